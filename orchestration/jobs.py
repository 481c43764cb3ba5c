"""Jobs: the whole per-batch pipeline, from sources to the warehouse."""

from __future__ import annotations

import dagster as dg

from assets.common.metadata import BATCH_GROUPS
from assets.tagging.assets import GROUP_TAXONOMY

INGEST_JOB = "ingest_batch"

ingest_batch_job = dg.define_asset_job(
    name=INGEST_JOB,
    selection=dg.AssetSelection.groups(*BATCH_GROUPS),
    description=(
        "Every stage of one creator batch: sources → images and duplicates → vision, embeddings and tags, "
        "profiles → blocking checks → one-transaction promotions into the warehouse."
    ),
    tags={"creatorlens/area": "ingest"},
)

CALIBRATE_JOB = "calibrate_tags"

calibrate_tags_job = dg.define_asset_job(
    name=CALIBRATE_JOB,
    selection=dg.AssetSelection.groups(GROUP_TAXONOMY),
    description="Publish the tag taxonomy and calibrate per-tag thresholds from labels and reviewer feedback.",
    tags={"creatorlens/area": "tagging"},
)
