"""Device choice for model backends: an ordered preference (CUDA → MPS → CPU) that the caller can force.

The choice is an argument, never read from the environment: the caller passes what its
settings say (``Settings.device``, ``Settings.text_embed_device``). ``auto`` (or None) takes the
first kind of the preference that this machine has; a named device (``cpu``, ``cuda``, ``cuda:N``,
``mps``) is forced, and forcing one the machine lacks raises :class:`DeviceUnavailable` instead
of silently running elsewhere.

``Device`` carries what backends need to place work: the torch device string, whether to run in
fp16 (CUDA only), and the ONNX Runtime execution providers in preference order.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn

DEFAULT_PREFERENCE = ("cuda", "mps", "cpu")
KINDS = frozenset(DEFAULT_PREFERENCE)


@dataclass(frozen=True)
class Device:
    kind: str  # "cuda" | "mps" | "cpu"
    index: int = 0

    @property
    def torch(self) -> str:
        return f"cuda:{self.index}" if self.kind == "cuda" else self.kind

    @property
    def fp16(self) -> bool:
        return self.kind == "cuda"

    @property
    def torch_dtype(self):
        import torch

        return torch.float16 if self.fp16 else torch.float32

    @property
    def onnx_providers(self) -> list[str]:
        """ONNX Runtime providers: CUDA first on a CUDA device when onnxruntime has it, else the CPU."""
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


def cuda_device_count() -> int:
    import torch

    return int(torch.cuda.device_count()) if cuda_available() else 0


def mps_available() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover
        return False
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def available_kinds() -> tuple[str, ...]:
    """The device kinds this machine has, best first (the CPU always)."""
    return (*(("cuda",) if cuda_available() else ()), *(("mps",) if mps_available() else ()), "cpu")


class DeviceUnavailable(ValueError):
    """The device asked for does not exist on this machine."""


def choose_device(device: str | Device | None = None, preference: Sequence[str] = DEFAULT_PREFERENCE) -> Device:
    """The device to run on: ``device`` if it names one (forced), else the first available of ``preference``.

    ``device`` is a :class:`Device` (used as given), ``None``/``auto`` (choose), or ``cpu``,
    ``cuda``, ``cuda:N``, ``mps`` (forced: :class:`DeviceUnavailable` if this machine lacks it).
    With several CUDA devices, ``auto`` and ``cuda:N,M,...`` claim one per process (:mod:`gpu_ops.devices`).
    """
    if isinstance(device, Device):
        return device
    name = (device or "auto").strip().lower()
    if name == "auto":
        have = available_kinds()
        for kind in preference:
            if kind not in KINDS:
                raise ValueError(f"unknown device kind {kind!r} in the preference {tuple(preference)}")
            if kind in have:
                # Several GPUs: this process claims one of its own (gpu_ops.devices), not always cuda:0.
                return Device(kind, _claimed_cuda_index() if kind == "cuda" else 0)
        raise DeviceUnavailable(f"none of {tuple(preference)} is available here (have {list(have)})")
    kind, _, index = name.partition(":")
    if kind == "cuda" and "," in index:  # cuda:0,2 — claim one of these for this process
        ids = [i.strip() for i in index.split(",")]
        if not all(i.isdigit() for i in ids):
            _bad_device(name)
        return Device("cuda", _claimed_cuda_index([int(i) for i in ids]))
    if kind not in KINDS or (index and (kind != "cuda" or not index.isdigit())):
        _bad_device(name)
    if kind == "cuda" and int(index or 0) >= cuda_device_count():
        have = cuda_device_count()
        raise DeviceUnavailable(f"device {name!r} was forced but is not available on this machine "
                                f"({have} CUDA device{'s' if have != 1 else ''})")
    if kind == "mps" and not mps_available():
        raise DeviceUnavailable(f"device {name!r} was forced but is not available on this machine (no MPS)")
    return Device(kind, int(index or 0))


def _bad_device(name: str) -> NoReturn:
    raise ValueError(f"unknown device {name!r}: use auto, cpu, cuda, cuda:N, cuda:N,M,... or mps")


def _claimed_cuda_index(explicit: list[int] | None = None) -> int:
    """With more than one CUDA device (or an explicit list): the ordinal this process claimed."""
    from gpu_ops.devices import process_device, visible_devices

    have = cuda_device_count()
    if explicit is not None and (not have or max(explicit) >= have):
        raise DeviceUnavailable(f"devices cuda:{explicit} were forced but this machine has {have} CUDA device"
                                f"{'s' if have != 1 else ''}")
    if explicit is None and have <= 1:
        return 0
    slots = visible_devices(explicit, count=have)
    return process_device(slots).ordinal
