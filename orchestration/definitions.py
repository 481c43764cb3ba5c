"""The one ``Definitions`` object: every asset, check, job and resource, listed explicitly.

``defs`` is built from :class:`creatorlens.settings.Settings` when Dagster loads this module;
tests call :func:`build_definitions` with their own settings instead.
"""

from __future__ import annotations

import warnings

import dagster as dg

# Partitioned asset checks (``partitions_def`` on a check) are a preview feature in Dagster 1.13;
# they are what lets a blocking check gate one batch. Acknowledge it once, here.
warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec", category=dg.PreviewWarning)

from assets import duplicates, images, ingest, promotion  # noqa: E402
from assets import vision, vision_faces, vision_features, vision_ocr, vision_promotion  # noqa: E402
from creatorlens.settings import Settings, get_settings
from orchestration.jobs import ingest_batch_job
from resources.blobstore import BlobStore
from resources.config import IngestConfig
from resources.io_managers import ParquetIOManager
from resources.models import ModelRegistry
from resources.sources import SourceFiles
from resources.vision import VisionConfig
from resources.warehouse import Warehouse

ASSETS = [ingest.raw_sources, images.creator_images, duplicates.image_duplicates, promotion.promoted_batch]
ASSET_CHECKS = [
    ingest.raw_profiles_valid,
    ingest.raw_posts_valid,
    images.creator_images_quality,
    duplicates.image_duplicates_valid,
]
# --- vision stages (issue 3) ---
ASSETS += [
    vision.persons,
    vision.keypoints,
    vision_ocr.ocr,
    vision_faces.faces,
    vision_features.image_features_asset,
    vision_promotion.vision_promoted,
]
ASSET_CHECKS += [
    vision.persons_valid,
    vision.keypoints_valid,
    vision_ocr.ocr_valid,
    vision_faces.faces_valid,
    vision_features.image_features_valid,
]
JOBS = [ingest_batch_job]


def build_resources(settings: Settings) -> dict[str, object]:
    return {
        "warehouse": Warehouse.from_settings(settings),
        "blobs": BlobStore(root=str(settings.blob_root)),
        "sources": SourceFiles.from_settings(settings),
        "ingest": IngestConfig(
            top_n_images=settings.top_n_images,
            image_workers=settings.image_workers,
            decode_workers=settings.decode_workers,
            pdq_max_distance=settings.pdq_max_distance,
            pdq_min_quality=settings.pdq_min_quality,
            max_failure_rate=settings.max_failure_rate,
        ),
        "io_manager": ParquetIOManager(base_dir=str(settings.parquet_root)),
        "models": ModelRegistry.from_settings(settings),
        "vision": VisionConfig(),
    }


def build_definitions(settings: Settings) -> dg.Definitions:
    return dg.Definitions(
        assets=ASSETS,
        asset_checks=ASSET_CHECKS,
        jobs=JOBS,
        resources=build_resources(settings),
    )


defs = build_definitions(get_settings())
