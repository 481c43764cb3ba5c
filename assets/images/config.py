"""Knobs of the images stage, shared by its assets and checks, visible (and overridable) in the Dagster UI.

Each field is declared once, in :class:`creatorlens.settings.Settings` (default, bounds,
description, environment variable ``CREATORLENS_<NAME>``); :func:`knob` exposes it here.
"""

from __future__ import annotations

import dagster as dg

from creatorlens.settings import FromSettings, knob


class IngestConfig(FromSettings, dg.ConfigurableResource):
    top_n_images: int = knob("top_n_images")
    image_workers: int | None = knob("image_workers")
    decode_workers: int | None = knob("decode_workers")
    max_image_bytes: int = knob("max_image_bytes")
    max_image_pixels: int = knob("max_image_pixels")
    http_timeout_s: float = knob("http_timeout_s")
    thumbnail_px: int = knob("thumbnail_px")
    pdq_max_distance: int = knob("pdq_max_distance")
    pdq_min_quality: int = knob("pdq_min_quality")
    pdq_match_transforms: bool = knob("pdq_match_transforms")
    reel_keyframes: int = knob("reel_keyframes")
    max_video_bytes: int = knob("max_video_bytes")
    max_failure_rate: float = knob("max_failure_rate")
