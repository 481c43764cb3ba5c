"""Tiny, randomly initialised models with the real signatures, built in the test (nothing downloaded)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def tiny_arcface_onnx(path: Path, *, batch: int | str = 1, seed: int = 0) -> Path:
    """An ONNX model with w600k_r50's signature: input ``batch x 3 x 112 x 112`` float, output ``batch x 512``.

    Conv(3→8, 8x8, stride 8) → ReLU → Flatten → Gemm(1568→512), random weights. ``batch`` is 1 (as
    InsightFace exports it) or a symbolic name for a dynamic batch.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    conv_w = rng.normal(0, 0.2, (8, 3, 8, 8)).astype(np.float32)
    gemm_w = rng.normal(0, 0.05, (8 * 14 * 14, 512)).astype(np.float32)
    gemm_b = rng.normal(0, 0.01, (512,)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["input.1", "conv_w"], ["c"], kernel_shape=[8, 8], strides=[8, 8]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Flatten", ["r"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "gemm_w", "gemm_b"], ["683"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_arcface",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [batch, 3, 112, 112])],
        [helper.make_tensor_value_info("683", TensorProto.FLOAT, [batch, 512])],
        initializer=[numpy_helper.from_array(conv_w, "conv_w"), numpy_helper.from_array(gemm_w, "gemm_w"),
                     numpy_helper.from_array(gemm_b, "gemm_b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def random_yolo_checkpoint(directory: Path, config: str = "yolov8n.yaml") -> Path:
    """A random-weight YOLOv8 built offline from its config, saved as a ``.pt`` checkpoint in ``directory``.

    ultralytics reads ``YOLO_CONFIG_DIR``/``YOLO_OFFLINE`` at its first import: a caller that wants
    them sets them (``monkeypatch.setenv``) before calling this.
    """
    from gpu_ops.compat import ensure_torchvision

    ensure_torchvision()  # ultralytics imports torchvision
    from ultralytics import YOLO

    model = YOLO(config)
    path = directory / f"random_{Path(config).stem}.pt"
    model.save(str(path))
    return path
