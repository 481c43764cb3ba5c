"""The one ``Definitions`` object: every asset, check, job, sensor, schedule and resource, listed explicitly.

``defs`` is built from :class:`creatorlens.settings.Settings` when Dagster loads this module;
tests call :func:`build_definitions` with their own settings instead.
"""

from __future__ import annotations

import dagster as dg

from assets.images import defs as images
from assets.images.config import IngestConfig
from assets.profiles import defs as profiles
from assets.sources import defs as sources
from assets.tagging import defs as tagging
from assets.tagging.config import TaggingConfig
from assets.vision import defs as vision
from assets.vision.config import VisionConfig
from assets.warehouse import defs as warehouse
from creatorlens.settings import Settings, get_settings
from orchestration.jobs import calibrate_tags_job, executor_for, ingest_batch_job, remap_object_categories_job
from orchestration.locations import for_location
from orchestration.observability import LOGGERS
from orchestration.schedules import monthly_reprocess
from orchestration.sensors import (
    batch_failure_sensor,
    build_new_creator_sensor,
    dead_run_sensor,
    flagged_images_sensor,
    upload_sensor,
    upload_status_sensor,
)
from resources.blobstore import BlobStore
from resources.io_managers import ParquetIOManager
from resources.llm import LlmClient
from resources.models import ModelRegistry
from resources.profile_api import ProfileApi
from resources.sources import SourceFiles
from resources.text_models import TextEmbeddings
from resources.vlm import VlmClient
from resources.warehouse import Warehouse

# Every stage, upstream first. How they connect (each arrow is an asset key in assets/common/keys.py):
#
#   sources ─► images ─┬─► vision ──────────────► warehouse/vision
#     │                ├─► tagging (embeddings ─► tags ─► creator tags) ─► warehouse/promoted_tags
#     │                └─► warehouse/promoted_batch ◄── blocking checks of sources and images
#     └─► profiles (enriched ─► llm ─► embeddings) ─► warehouse/promoted_profiles
#
# Each stage's promotion waits for warehouse/promoted_batch (the creators and images it refers to).
STAGES = (sources, images, vision, tagging, profiles, warehouse)
ASSETS = [asset for stage in STAGES for asset in stage.ASSETS]
ASSET_CHECKS = [check for stage in STAGES for check in stage.CHECKS]
JOBS = [ingest_batch_job, calibrate_tags_job, remap_object_categories_job]


def build_resources(settings: Settings) -> dict[str, object]:
    return {
        "warehouse": Warehouse.from_settings(settings),
        "blobs": BlobStore(root=str(settings.blob_root)),
        "sources": SourceFiles.from_settings(settings),
        "ingest": IngestConfig.from_settings(settings),
        "io_manager": ParquetIOManager(base_dir=str(settings.parquet_root)),
        "models": ModelRegistry.from_settings(settings),
        "profile_api": ProfileApi.from_settings(settings),
        "llm": LlmClient.from_settings(settings),
        "vlm": VlmClient.from_settings(settings),
        "text_embeddings": TextEmbeddings.from_settings(settings),
        "vision": VisionConfig.from_settings(settings),
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
            sensors=[build_new_creator_sensor(settings.batch_size), flagged_images_sensor, batch_failure_sensor,
                     dead_run_sensor, upload_sensor, upload_status_sensor],
            schedules=[monthly_reprocess],
            loggers=LOGGERS,
            executor=executor_for(settings.run_executor, settings.run_max_concurrent_steps),
        ),
        settings.code_location,
    )


defs = build_definitions(get_settings())
