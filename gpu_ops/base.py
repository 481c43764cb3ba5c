"""The one small interface every model family implements.

A backend is built cheaply (no weights touched), loads once on first use (``load()`` is lazy,
idempotent and thread-safe), and answers ``predict(batch)`` for a list of inputs (RGB ``uint8``
arrays for image models) with one result per input, in order. Batching, device placement and
fp16 are the backend's business; callers only choose the batch size.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

from gpu_ops.device import Device
from gpu_ops.spec import ModelSpec, sha256_file

Out = TypeVar("Out")


class ModelBackend(ABC, Generic[Out]):
    def __init__(
        self,
        spec: ModelSpec,
        weights: Path | None,
        device: Device,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        self.spec = spec
        self.weights = weights
        self.device = device
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
                    self._load()
                    self._loaded = True
        return self

    @property
    def loaded(self) -> bool:
        return self._loaded

    @abstractmethod
    def _load(self) -> None: ...

    @abstractmethod
    def predict(self, batch: Sequence[Any]) -> list[Out]: ...

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.version}, device={self.device}, weights={self.weights})"
