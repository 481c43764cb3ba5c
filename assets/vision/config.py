"""Knobs of the vision stages, shared by their assets and checks, visible (and overridable) in the Dagster UI.

Each field is declared once, in :class:`creatorlens.settings.Settings` as ``vision_<name>``
(environment variable ``CREATORLENS_VISION_<NAME>``); :func:`knob` exposes it here.
"""

from __future__ import annotations

import dagster as dg

from creatorlens.settings import FromSettings, knob


class VisionConfig(FromSettings, dg.ConfigurableResource):
    max_side: int = knob("vision_max_side")
    min_image_px: int = knob("vision_min_image_px")
    min_person_px: int = knob("vision_min_person_px")
    crop_margin: float = knob("vision_crop_margin")
    crop_jpeg_quality: int = knob("vision_crop_jpeg_quality")
    decode_workers: int = knob("vision_decode_workers")
    face_cluster_eps: float = knob("vision_face_cluster_eps")
    face_cluster_min_samples: int = knob("vision_face_cluster_min_samples")
    max_failure_rate: float = knob("vision_max_failure_rate")
    object_min_confidence: float = knob("vision_object_min_confidence")
    cpu_workers: int = knob("vision_cpu_workers")
    pool_min_images: int = knob("vision_pool_min_images")
    ocr_prefilter: bool = knob("vision_ocr_prefilter")
