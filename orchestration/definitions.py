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
from assets import tagging  # noqa: E402
from creatorlens.settings import Settings, get_settings
from orchestration.jobs import calibrate_tags_job, ingest_batch_job
from resources.blobstore import BlobStore
from resources.config import IngestConfig
from resources.io_managers import ParquetIOManager
from resources.models import ModelRegistry
from resources.sources import SourceFiles
from resources.tagging import TaggingConfig
from resources.warehouse import Warehouse

ASSETS = [ingest.raw_sources, images.creator_images, duplicates.image_duplicates, promotion.promoted_batch]
# Tagging: taxonomy + calibrated thresholds (unpartitioned), embeddings → tags → creator tags → promotion.
ASSETS += [tagging.tag_taxonomy, tagging.tag_thresholds, tagging.image_embeddings, tagging.image_tags,
           tagging.creator_tags, tagging.promoted_tags]
ASSET_CHECKS = [
    ingest.raw_profiles_valid,
    ingest.raw_posts_valid,
    images.creator_images_quality,
    duplicates.image_duplicates_valid,
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
        # Validates the taxonomy now: a refused or malformed taxonomy fails start-up, loudly.
        "tagging": TaggingConfig.from_settings(settings),
    }


def build_definitions(settings: Settings) -> dg.Definitions:
    return dg.Definitions(
        assets=ASSETS,
        asset_checks=ASSET_CHECKS,
        jobs=JOBS,
        resources=build_resources(settings),
    )


defs = build_definitions(get_settings())
