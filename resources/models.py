"""``ModelRegistry``: which backend and weights each model family uses, on which device; loaded models live in ``MODEL_CACHE``.

``MODEL_CACHE`` is the process's one :class:`~gpu_ops.cache.ModelCache`, owned by this module:
``ModelRegistry`` and ``TextEmbeddings`` (``resources.text_models``) both load through it, so a
model loads once per process and configuration however many resource copies Dagster makes (it
makes one per run or step). It keeps at most ``MAX_CACHED_MODELS`` backends and forgets one
unused for ``CACHE_IDLE_S``; tests call ``MODEL_CACHE.clear()``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from creatorlens.settings import Settings
from gpu_ops.base import ModelBackend
from gpu_ops.cache import ModelCache, cache_key
from gpu_ops.device import Device, choose_device
from gpu_ops.registry import ModelSpec, get_spec, resolve

log = logging.getLogger(__name__)

MAX_CACHED_MODELS = 8  # one of each family the pipeline runs
CACHE_IDLE_S = 30 * 60.0  # a long-lived process (app, CLI loop) gives back a model nobody used for this long
MODEL_CACHE = ModelCache(max_models=MAX_CACHED_MODELS, idle_s=CACHE_IDLE_S)


class ModelRegistry(dg.ConfigurableResource):
    """Per family: the backend (forced, or the first whose weights are in the cache), the weights and the device.

    ``weights`` maps a family to a local file or folder used instead of the cache (tiny test
    models, or weights kept elsewhere); ``backends`` forces a backend per family.
    """

    cache_dir: str
    device: str = Field(default="auto", description="auto | cpu | cuda | cuda:N | mps")
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

    def _cached(self, family: str, options: dict[str, Any], load: bool) -> ModelBackend:
        spec = self.spec(family)
        device = self.device_choice()
        weights = self.weights_path(spec)
        return MODEL_CACHE.get(cache_key(spec, weights, device, options),
                               lambda: spec.backend_cls(spec, weights, device, options), load=load)

    def backend(self, family: str, **options: Any) -> ModelBackend:
        """The backend for ``family``, not loaded: its identity and declared dimension without touching weights.

        It is the cached object :meth:`load` returns for the same options, so loading it later loads it once.
        """
        return self._cached(family, options, load=False)

    def load(self, family: str, **options: Any) -> ModelBackend:
        """The loaded backend for ``family`` (built and loaded once per process and configuration)."""
        backend = self._cached(family, options, load=True)
        log.info("model %s: %s on %s", family, backend.spec.version, backend.device)
        return backend
