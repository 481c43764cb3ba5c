"""Monthly re-processing: the embedding and tagging stages again, for every promoted batch.

What a batch re-runs is :func:`reprocess_selection` (the vision and tagging groups plus the
warehouse promotion assets downstream of them) and, per batch, every stage whose code version
(the model version, for model stages) differs from the one its last materialisation of that batch
ran with, plus what lies downstream of it. Each row keeps the model version it was made with, so
old and new results stay apart in the warehouse.

Why one ``RunRequest`` per batch and not a backfill: in Dagster 1.13 only the sensor and
automation daemons turn a request into a backfill (``RunRequest.for_asset_graph_subset``, a
private constructor taking a private ``AssetGraphSubset``); the schedule daemon launches runs
only (``dagster/_scheduler/scheduler.py`` has no backfill path). One run per batch is what the
backfill would launch anyway (``BATCH_BACKFILL_POLICY``: one partition per run); the runs carry
the tag ``creatorlens/reprocess=<month>`` and dagster.yaml's ``tag_concurrency_limits`` on that
key throttle them in the run queue, like the backfill limit would. ``run_key`` is month + batch,
so a tick retried after a crash launches nothing twice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

import dagster as dg

from assets.common.keys import PROMOTED_BATCH
from assets.common.metadata import BATCH_GROUPS, GROUP_TAGGING, GROUP_VISION, GROUP_WAREHOUSE
from orchestration.jobs import ingest_batch_job

REPROCESS_SCHEDULE = "monthly_reprocess"
REPROCESS_TAG = "creatorlens/reprocess"
CODE_VERSION_TAG = "dagster/code_version"
REPROCESS_CRON = "0 3 1 * *"  # 03:00 on the 1st of every month


def reprocess_selection() -> dg.AssetSelection:
    """The monthly re-run: embedding and tagging stages, and the promotion assets they feed."""
    stages = dg.AssetSelection.groups(GROUP_VISION, GROUP_TAGGING)
    return stages | (stages.downstream() & dg.AssetSelection.groups(GROUP_WAREHOUSE))


def batch_pipeline_selection() -> dg.AssetSelection:
    return dg.AssetSelection.groups(*BATCH_GROUPS)


def changed_code_versions(
    instance: dg.DagsterInstance, asset_graph, keys: Iterable[dg.AssetKey], partitions: Sequence[str]
) -> dict[str, set[dg.AssetKey]]:
    """Per batch, the assets whose last materialisation of it ran another code version than now.

    Two queries per asset with a code version: the latest materialisation id of each batch, then
    those records. An asset without a code version is never "changed" (Dagster tags its runs with
    the run id instead). A batch never materialised is not changed either: that is the sensor's job.
    """
    changed: dict[str, set[dg.AssetKey]] = defaultdict(set)
    for key in keys:
        current = asset_graph.get(key).code_version
        if current is None:
            continue
        latest = instance.get_latest_storage_id_by_partition(
            key, dg.DagsterEventType.ASSET_MATERIALIZATION, set(partitions)
        )
        if not latest:
            continue
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, storage_ids=list(latest.values())), limit=len(latest)
        ).records
        for record in records:
            materialization = record.asset_materialization
            if materialization is None or record.partition_key is None:
                continue
            if (materialization.tags or {}).get(CODE_VERSION_TAG) != current:
                changed[record.partition_key].add(key)
    return changed


def reprocess_plan(
    instance: dg.DagsterInstance, asset_graph, batches: Sequence[str]
) -> Mapping[str, list[dg.AssetKey]]:
    """Batch → sorted asset keys to re-run (empty batches left out)."""
    pipeline = batch_pipeline_selection().resolve(asset_graph)
    forced = reprocess_selection().resolve(asset_graph) & pipeline
    changed = changed_code_versions(instance, asset_graph, sorted(pipeline, key=str), batches)
    plan: dict[str, list[dg.AssetKey]] = {}
    for batch in batches:
        keys = set(forced)
        if changed.get(batch):
            keys |= dg.AssetSelection.assets(*changed[batch]).downstream().resolve(asset_graph) & pipeline
        if keys:
            plan[batch] = sorted(keys, key=lambda k: k.to_user_string())
    return plan


@dg.schedule(
    name=REPROCESS_SCHEDULE,
    cron_schedule=REPROCESS_CRON,
    job=ingest_batch_job,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Monthly: re-run the embedding and tagging stages (and any stage whose code/model version "
    "changed) for every promoted batch, one queued run per batch, throttled by the creatorlens/reprocess tag.",
)
def monthly_reprocess(context: dg.ScheduleEvaluationContext):
    month = context.scheduled_execution_time.strftime("%Y-%m")
    batches = sorted(context.instance.get_materialized_partitions(PROMOTED_BATCH))
    if not batches:
        return dg.SkipReason("no promoted batches yet")
    plan = reprocess_plan(context.instance, context.repository_def.asset_graph, batches)
    if not plan:
        return dg.SkipReason(
            f"nothing to re-process in {len(batches)} batches: no assets in groups "
            f"{GROUP_VISION}/{GROUP_TAGGING} and no changed code versions"
        )
    return [
        dg.RunRequest(
            run_key=f"reprocess:{month}:{batch}",
            partition_key=batch,
            asset_selection=keys,
            tags={REPROCESS_TAG: month},
        )
        for batch, keys in plan.items()
    ]
