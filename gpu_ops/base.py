"""The one small interface every model family implements.

A backend is built cheaply: the constructor does no I/O and imports no model library. ``load()``
is lazy, idempotent and thread-safe (two threads asking at once load once): it settles the device
(a :class:`~gpu_ops.device.Device` is used as given, a name or ``auto`` is chosen then) and calls
the backend's ``_load()``, the only place its library (torch, mediapipe, ultralytics…) is imported.
``predict(batch)`` takes a list of inputs (RGB ``uint8`` arrays for image models, strings for
text) and returns one result per input, in order; it loads on first use and hands the batch to
the backend's ``_predict()``. Batching, device placement and fp16 are the backend's business;
callers only choose the batch size. Loading never touches ``os.environ``: everything a library
needs is passed to it as an argument.

Families (one output type each) and their backends:

- person detection → ``list[PersonBox]``: ``YoloPersonDetector``, ``MediaPipePersonDetector``, ``HogPersonDetector``
- pose → ``Pose | None``: ``MediaPipePose``; segmentation → ``Silhouette``: ``SelfieSegmenter``
- OCR → ``list[TextLine]``: ``RapidOcr``
- faces → ``list[FaceBox]``: ``MediaPipeFaceDetector``; face embeddings → 512-d: ``ArcFaceEmbedder``
- image embeddings → unit vectors: ``ImageEmbedder`` (``SiglipEmbedder``, ``OpenClipEmbedder``)
- text embeddings → unit vectors: ``TextEmbedder`` (sentence-transformers, all-MiniLM-L6-v2)
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

from gpu_ops.device import Device, choose_device
from gpu_ops.spec import ModelSpec, sha256_file

Out = TypeVar("Out")


class ModelBackend(ABC, Generic[Out]):
    def __init__(
        self,
        spec: ModelSpec,
        weights: Path | None = None,
        device: Device | str | None = "auto",
        options: Mapping[str, Any] | None = None,
    ) -> None:
        self.spec = spec
        self.weights = weights
        self.requested_device = device
        # A Device is used as given; a name (or auto) is chosen on load(): None until then.
        self.device: Device | None = device if isinstance(device, Device) else None
        self.options = dict(options or {})
        self._loaded = False
        self._lock = threading.Lock()
        self._version: str | None = None

    @property
    def version(self) -> str:
        """``model_id@revision``: recorded with every row this backend produces.

        Weights given as one file instead of the pulled cache folder (a test model, a hand-exported
        ONNX) are named by file name and content digest, so rows never claim a catalog model they
        did not come from.
        """
        if self._version is None:
            path = Path(self.weights) if self.weights is not None else None
            if path is not None and path.is_file():
                self._version = f"{path.name}@sha256:{sha256_file(path)[:12]}"
            else:
                self._version = self.spec.version
        return self._version

    def load(self) -> ModelBackend[Out]:
        if not self._loaded:
            with self._lock:
                if not self._loaded:
                    if self.device is None:
                        self.device = choose_device(self.requested_device)
                    self._load()
                    self._loaded = True
        return self

    @property
    def loaded(self) -> bool:
        return self._loaded

    def predict(self, batch: Sequence[Any]) -> list[Out]:
        """One result per input, in input order; an empty batch gives ``[]`` without loading."""
        items = list(batch)
        if not items:
            return []
        self.load()
        out = self._predict(items)
        if len(out) != len(items):
            raise RuntimeError(f"{type(self).__name__} returned {len(out)} results for {len(items)} inputs")
        return out

    @abstractmethod
    def _load(self) -> None:
        """Import the library and build the model on ``self.device`` (called once, under the load lock)."""

    @abstractmethod
    def _predict(self, batch: list[Any]) -> list[Out]:
        """Results for a non-empty batch, the model loaded: no I/O beyond the model itself."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.version}, device={self.device}, weights={self.weights})"
