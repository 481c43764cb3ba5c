"""The one ``Definitions`` object: every asset, check, job, sensor, schedule and resource, listed explicitly.

``defs`` is built from :class:`creatorlens.settings.Settings` when Dagster loads this module;
tests call :func:`build_definitions` with their own settings instead.
"""

from __future__ import annotations

import dagster as dg

from assets import duplicates, images, ingest, promotion  # noqa: E402
from assets import enrichment, llm_profiles, profile_promotion  # noqa: E402  (profiles, issue 5)
from assets import tagging  # noqa: E402
from assets import vision, vision_faces, vision_features, vision_ocr, vision_promotion  # noqa: E402
from creatorlens.settings import Settings, get_settings
from orchestration.jobs import calibrate_tags_job, ingest_batch_job
from orchestration.locations import for_location
from orchestration.observability import LOGGERS
from orchestration.schedules import monthly_reprocess
from orchestration.sensors import batch_failure_sensor, build_new_creator_sensor, flagged_images_sensor
from resources.blobstore import BlobStore
from resources.config import IngestConfig
from resources.io_managers import ParquetIOManager
from resources.models import ModelRegistry
from resources.llm import LlmClient
from resources.profile_api import ProfileApi
from resources.sources import SourceFiles
from resources.tagging import TaggingConfig
from resources.text_models import TextEmbeddings
from resources.vision import VisionConfig
from resources.warehouse import Warehouse

ASSETS = [ingest.raw_sources, images.creator_images, duplicates.image_duplicates, promotion.promoted_batch]
# ---- profiles (issue 5)
ASSETS += [enrichment.enriched_profiles, llm_profiles.llm_profiles, llm_profiles.profile_embeddings,
           profile_promotion.promoted_profiles]
# Tagging: taxonomy + calibrated thresholds (unpartitioned), embeddings → tags → creator tags → promotion.
ASSETS += [tagging.tag_taxonomy, tagging.tag_thresholds, tagging.image_embeddings, tagging.image_tags,
           tagging.creator_tags, tagging.promoted_tags]
ASSET_CHECKS = [
    ingest.raw_profiles_valid,
    ingest.raw_posts_valid,
    images.creator_images_quality,
    duplicates.image_duplicates_valid,
]
# ---- profiles (issue 5)
ASSET_CHECKS += [enrichment.enriched_profiles_valid, llm_profiles.llm_profiles_valid,
                 llm_profiles.profile_embeddings_valid]
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
ASSET_CHECKS += [tagging.image_embeddings_valid, tagging.image_tags_valid, tagging.creator_tags_valid]
JOBS = [ingest_batch_job]
JOBS += [calibrate_tags_job]


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
        # ---- profiles (issue 5)
        "profile_api": ProfileApi.from_settings(settings),
        "llm": LlmClient.from_settings(settings),
        "text_embeddings": TextEmbeddings.from_settings(settings),
        "vision": VisionConfig(),
        # Validates the taxonomy now: a refused or malformed taxonomy fails start-up, loudly.
        "tagging": TaggingConfig.from_settings(settings),
    }


def build_definitions(settings: Settings) -> dg.Definitions:
    return for_location(
        dg.Definitions(
            assets=ASSETS,
            asset_checks=ASSET_CHECKS,
            jobs=JOBS,
            resources=build_resources(settings),
            # ---- operations (issue 6) ----
            sensors=[build_new_creator_sensor(settings.batch_size), flagged_images_sensor, batch_failure_sensor],
            schedules=[monthly_reprocess],
            loggers=LOGGERS,
        ),
        settings.code_location,
    )


defs = build_definitions(get_settings())
