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


def executor_for(kind: str, max_concurrent: int = 2) -> dg.ExecutorDefinition:
    """The executor of every job (``CREATORLENS_RUN_EXECUTOR``).

    ``in_process`` (default): the run worker executes its steps one after another, in its own
    process, exactly as ``creatorlens run`` does, so a run launched from the UI or the daemon
    costs one process start and one import of the code location, not one per step (~33 of them
    for a batch). Parallelism comes from runs: one run per batch, up to ``max_concurrent_runs``
    at once, and the ``gpu`` pool still serialises GPU steps across all runs (pools are claimed
    by the in-process executor too).

    ``multiprocess``: a process per step, forked from a forkserver that has already imported the
    code location (``preload_modules``), for deployments where steps of one run should overlap.
    """
    if kind == "in_process":
        return dg.in_process_executor
    return dg.multiprocess_executor.configured({
        "max_concurrent": max_concurrent,
        "start_method": {"forkserver": {"preload_modules": ["orchestration.definitions"]}},
    })

