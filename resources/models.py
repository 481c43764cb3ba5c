"""``ModelRegistry``: which backend and weights each model family uses, on which device, loaded once per process."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from creatorlens.settings import Settings
from gpu_ops.base import ModelBackend
from gpu_ops.device import Device, choose_device
from gpu_ops.registry import ModelSpec, get_spec, resolve

log = logging.getLogger(__name__)

_loaded: dict[tuple, ModelBackend] = {}
_loaded_lock = threading.Lock()


class ModelRegistry(dg.ConfigurableResource):
    """Per family: the backend (forced, or the first whose weights are in the cache), the weights and the device.

    ``weights`` maps a family to a local file or folder used instead of the cache (tiny test
    models, or weights kept elsewhere); ``backends`` forces a backend per family.
    """

    cache_dir: str
    device: str = Field(default="auto", description="auto | cpu | cuda | cuda:N")
    backends: dict[str, str] = Field(default_factory=dict, description="family → forced backend")
    weights: dict[str, str] = Field(default_factory=dict, description="family → local weights path (overrides the cache)")
    batch_size: int = Field(default=16, description="images per inference batch")

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> ModelRegistry:
        values: dict[str, Any] = {
            "cache_dir": str(settings.model_cache),
            "device": settings.device,
            "backends": dict(settings.model_backends),
            "batch_size": settings.inference_batch_size,
            "weights": dict(settings.model_weights),
        }
        values.update(overrides)
        return cls(**values)

    def device_choice(self) -> Device:
        return choose_device(self.device)

    def spec(self, family: str) -> ModelSpec:
        forced = self.backends.get(family)
        if family in self.weights:
            return get_spec(family, forced)
        return resolve(family, Path(self.cache_dir), forced, self.device_choice().kind)

    def weights_path(self, spec: ModelSpec) -> Path | None:
        if spec.family in self.weights:
            return Path(self.weights[spec.family])
        if spec.bundled:
            return None
        return Path(self.cache_dir) / spec.family / spec.backend

    def load(self, family: str, **options: Any) -> ModelBackend:
        """The loaded backend for ``family`` (built and loaded once per process and configuration)."""
        spec = self.spec(family)
        device = self.device_choice()
        weights = self.weights_path(spec)
        key = (family, spec.backend, str(weights), device.torch, tuple(sorted(options.items())))
        with _loaded_lock:
            backend = _loaded.get(key)
            if backend is None:
                backend = spec.backend_cls(spec, weights, device, options)
                _loaded[key] = backend
        log.info("model %s: %s on %s", family, spec.version, device)
        return backend.load()


def clear_loaded() -> None:
    """Forget every loaded backend (tests; frees memory)."""
    with _loaded_lock:
        _loaded.clear()
