"""Pipeline knobs that assets and checks share, visible (and overridable) in the Dagster UI."""

from __future__ import annotations

import dagster as dg
from pydantic import Field


class IngestConfig(dg.ConfigurableResource):
    top_n_images: int = Field(default=10, ge=1, description="Images kept per creator, by likes + comments.")
    image_workers: int | None = Field(default=None, ge=1, description="Fetch threads (default: CPUs x 2).")
    decode_workers: int | None = Field(
        default=None, ge=1, description="Decode + PDQ processes (default: CPUs; 1 = in-process threads)."
    )
    max_image_bytes: int = Field(default=25 * 1024 * 1024, ge=1)
    max_image_pixels: int = Field(default=60_000_000, ge=1, description="Decompression-bomb cap (w x h).")
    http_timeout_s: float = Field(default=20.0, gt=0)
    thumbnail_px: int = Field(default=400, ge=16)
    pdq_max_distance: int = Field(default=31, ge=0, le=256, description="Near-duplicate Hamming threshold.")
    pdq_min_quality: int = Field(default=50, ge=0, le=100, description="PDQ quality needed to compare.")
    max_failure_rate: float = Field(
        default=0.2, ge=0.0, le=1.0, description="Share of failed images above which promotion is blocked."
    )
