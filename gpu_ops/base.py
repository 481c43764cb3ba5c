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
from gpu_ops.registry import ModelSpec

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

    @property
    def version(self) -> str:
        """``model_id@revision``: recorded with every row this backend produces."""
        return self.spec.version

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
