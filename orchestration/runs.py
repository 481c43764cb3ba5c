"""Batch discovery and local materialisation, shared by the CLI, the tests and (later) the sensor."""

from __future__ import annotations

from dataclasses import dataclass, field

import dagster as dg

from creatorlens.batching import BatchAssignment, assign_batches, record_rejects
from creatorlens.settings import Settings
from creatorlens.sources import SourceSnapshot
from orchestration.partitions import register_batches
from resources.sources import SourceFiles
from resources.warehouse import engine_from_settings

PROMOTED_PATH = ["warehouse", "promoted_batch"]


@dataclass
class Discovery:
    snapshot: SourceSnapshot
    assignment: BatchAssignment
    registered: list[str]


@dataclass
class BatchRun:
    partition: str
    run_id: str
    success: bool
    promoted: bool
    failed_checks: list[str] = field(default_factory=list)


def discover_batches(settings: Settings, instance: dg.DagsterInstance, batch_size: int | None = None) -> Discovery:
    """Read the sources, record their rejects, batch new creators, register partitions. Idempotent."""
    engine = engine_from_settings(settings)
    snapshot = SourceFiles(csv_dir=str(settings.resolved_csv_dir), json_dir=str(settings.resolved_json_dir)).load()
    record_rejects(engine, snapshot.rejects)
    assignment = assign_batches(engine, list(snapshot.creators), batch_size=batch_size or settings.batch_size)
    return Discovery(snapshot, assignment, register_batches(instance, assignment.all_batches))


def materialize_batch(
    job: dg.JobDefinition, instance: dg.DagsterInstance, partition: str, *, log_level: str = "INFO"
) -> BatchRun:
    """Run ``job`` for one partition in this process, recorded in ``instance`` like any other run."""
    result = job.execute_in_process(
        partition_key=partition,
        instance=instance,
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
    )
    failed_checks = [
        e.asset_check_evaluation_data.check_name
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION" and not e.asset_check_evaluation_data.passed
    ]
    promoted = any(
        e.event_type_value == "ASSET_MATERIALIZATION" and e.asset_key.path == PROMOTED_PATH for e in result.all_events
    )
    return BatchRun(partition, result.run_id, result.success, promoted, failed_checks)
