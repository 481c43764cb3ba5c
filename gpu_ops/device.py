"""Device choice for model backends: an ordered preference (CUDA → CPU) that a setting can force.

``Device`` carries what backends need to place work: the torch device string, whether to run in
fp16 (CUDA only), and the ONNX Runtime execution providers in preference order.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

DEFAULT_PREFERENCE = ("cuda", "cpu")
ENV_FORCE = "CREATORLENS_DEVICE"


@dataclass(frozen=True)
class Device:
    kind: str  # "cuda" | "cpu"
    index: int = 0

    @property
    def torch(self) -> str:
        return f"cuda:{self.index}" if self.kind == "cuda" else "cpu"

    @property
    def fp16(self) -> bool:
        return self.kind == "cuda"

    @property
    def torch_dtype(self):
        import torch

        return torch.float16 if self.fp16 else torch.float32

    @property
    def onnx_providers(self) -> list[str]:
        available = _onnx_providers()
        wanted = ["CUDAExecutionProvider", "CPUExecutionProvider"] if self.kind == "cuda" else ["CPUExecutionProvider"]
        return [p for p in wanted if p in available] or ["CPUExecutionProvider"]

    def __str__(self) -> str:
        return self.torch


@functools.cache
def _onnx_providers() -> tuple[str, ...]:
    try:
        import onnxruntime

        return tuple(onnxruntime.get_available_providers())
    except ImportError:  # pragma: no cover - onnxruntime is a project dependency
        return ("CPUExecutionProvider",)


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover
        return False
    return bool(torch.cuda.is_available())


class DeviceUnavailable(RuntimeError):
    pass


def choose_device(force: str | None = None, preference: tuple[str, ...] = DEFAULT_PREFERENCE) -> Device:
    """First available device in ``preference``; ``force`` (or ``$CREATORLENS_DEVICE``) pins one.

    ``force`` accepts ``auto``, ``cpu``, ``cuda`` or ``cuda:N``. Forcing CUDA on a machine without
    it raises :class:`DeviceUnavailable` instead of silently running on the CPU.
    """
    force = (force or os.environ.get(ENV_FORCE) or "auto").strip().lower()
    if force != "auto":
        kind, _, index = force.partition(":")
        if kind not in ("cpu", "cuda"):
            raise ValueError(f"unknown device {force!r}: use auto, cpu, cuda or cuda:N")
        if kind == "cuda" and not cuda_available():
            raise DeviceUnavailable(f"device {force!r} was forced but CUDA is not available on this machine")
        return Device(kind, int(index or 0))
    for kind in preference:
        if kind == "cuda" and cuda_available():
            return Device("cuda", 0)
        if kind == "cpu":
            return Device("cpu")
    raise DeviceUnavailable(f"none of {preference} is available")
