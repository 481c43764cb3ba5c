"""Make ``torchvision`` importable on a CPU-only torch whose torchvision wheel is a CUDA build.

PyPI's ``torchvision==0.28.0`` is built against CUDA torch. With the CPU torch 2.13.0 wheel its
compiled extension (``torchvision/_C.so``) fails to load, and ``import torchvision`` then raises
``RuntimeError: operator torchvision::nms does not exist`` while registering fake kernels for ops
the extension never defined. ultralytics, open_clip and transformers all import torchvision, so
that one failure takes every model backend down.

:func:`ensure_torchvision` runs before torchvision is first imported. When the extension loads
(any real CUDA install, or a matching CPU build) it does nothing. Only when the extension fails
to load does it define ``torchvision::nms`` and ``torchvision::qnms`` through ``torch.library`` with
a pure-torch CPU implementation, which is what the models here need (box NMS in post-processing),
and tells ``torchvision.extension`` that ops are present so ``torchvision.ops.nms`` dispatches to
it. Every other compiled torchvision op (roi_align, deform_conv…) stays unavailable, as before.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path

log = logging.getLogger(__name__)

_state: dict[str, object] = {}


def _extension_path() -> Path | None:
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        for candidate in Path(location).glob("_C*.so"):
            return candidate
    return None


def nms_reference(boxes, scores, iou_threshold: float):
    """Greedy non-maximum suppression in plain torch; same contract as ``torchvision.ops.nms``.

    Boxes are ``(N, 4)`` in ``x1, y1, x2, y2``; returns kept indices sorted by decreasing score.
    """
    import torch

    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    boxes = boxes.float()
    x1, y1, x2, y2 = boxes.unbind(1)
    areas = (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)
    order = scores.argsort(descending=True)
    # Pairwise IoU once (N is a few hundred candidates after the score filter), then a greedy sweep.
    xx1 = torch.maximum(x1[:, None], x1[None, :])
    yy1 = torch.maximum(y1[:, None], y1[None, :])
    xx2 = torch.minimum(x2[:, None], x2[None, :])
    yy2 = torch.minimum(y2[:, None], y2[None, :])
    inter = (xx2 - xx1).clamp(min=0) * (yy2 - yy1).clamp(min=0)
    iou = inter / (areas[:, None] + areas[None, :] - inter).clamp(min=1e-9)
    suppressed = torch.zeros(len(order), dtype=torch.bool)
    keep: list[int] = []
    iou_sorted = (iou[order][:, order] > iou_threshold).cpu()
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= iou_sorted[i]
    return order[torch.tensor(keep, dtype=torch.int64, device=order.device)]


def _qnms(dets, scores, iou_threshold: float):
    return nms_reference(dets.dequantize(), scores.dequantize(), iou_threshold)


def ensure_torchvision() -> bool:
    """Prepare torchvision for import; returns True when the CPU fallback ops were registered.

    Idempotent. A no-op when torchvision is absent, already imported, or its extension loads.
    """
    if "registered" in _state:
        return bool(_state["registered"])
    registered = False
    path = _extension_path()
    if path is not None and "torchvision" not in sys.modules:
        import torch

        try:
            torch.ops.load_library(str(path))
        except (OSError, RuntimeError) as exc:
            log.info("torchvision extension unavailable (%s); registering CPU nms/qnms", str(exc)[:120])
            lib = torch.library.Library("torchvision", "DEF")
            lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
            lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
            lib.impl("nms", nms_reference, "CPU")
            lib.impl("qnms", _qnms, "QuantizedCPU")
            _state["library"] = lib  # a Library unregisters its ops when garbage-collected
            registered = True
            import torchvision.extension

            # torchvision.ops.nms asks ``_has_ops()`` before dispatching; the ops it needs now exist.
            # Other compiled ops still fail, now with "operator torchvision::<op> does not exist".
            torchvision.extension._has_ops = lambda: True
    _state["registered"] = registered
    return registered


def restore_pil_open() -> bool:
    """Undo ultralytics' global ``PIL.Image.open`` patch; whether there was one to undo.

    Importing ultralytics (``ultralytics.utils.patches``) replaces ``PIL.Image.open`` for the whole
    process with a wrapper that, on the first file Pillow cannot identify, runs
    ``check_requirements("pi-heif")`` — a ``pip install`` at run time — and then imports ``pi_heif``.
    In a step that decodes images after a YOLO model was loaded (the in-process executor runs every
    step in one process), a corrupt download then became ``ModuleNotFoundError: pi_heif`` (an
    ``internal_error`` row) instead of ``not_an_image``, after an attempted install. We register
    HEIF ourselves (pillow-heif, assets/images/imaging.py), so the wrapper buys nothing: callers
    run this right after importing ultralytics.
    """
    patches = sys.modules.get("ultralytics.utils.patches")
    original = getattr(patches, "_image_open", None)
    if original is None:
        return False
    from PIL import Image

    if Image.open is original:
        return False
    Image.open = original
    return True
