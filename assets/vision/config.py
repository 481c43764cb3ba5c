"""Knobs of the vision stages, shared by their assets and checks and visible in the Dagster UI."""

from __future__ import annotations

import dagster as dg
from pydantic import Field


class VisionConfig(dg.ConfigurableResource):
    max_side: int = Field(default=1600, ge=64, description="Images are decoded no larger than this (longer side).")
    min_image_px: int = Field(default=32, ge=1, description="Shorter side below which an image is 'too_small'.")
    min_person_px: int = Field(default=48, ge=1, description="Person boxes with a shorter side below this are dropped.")
    crop_margin: float = Field(default=0.1, ge=0.0, le=1.0, description="Crop = person box widened by this share.")
    crop_jpeg_quality: int = Field(default=90, ge=30, le=100)
    decode_workers: int = Field(default=4, ge=1, description="Threads decoding images ahead of the models.")
    face_cluster_eps: float = Field(
        default=0.55, gt=0.0, lt=2.0, description="Cosine distance within which two faces are neighbours."
    )
    face_cluster_min_samples: int = Field(default=2, ge=1, description="Faces needed to start a cluster.")
    max_failure_rate: float = Field(
        default=0.2, ge=0.0, le=1.0, description="Share of images a stage may fail on before promotion is blocked."
    )
