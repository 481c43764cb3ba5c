"""Batch discovery and local materialisation, shared by the CLI, the tests and (later) the sensor."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from assets.promotion import PROMOTED_BATCH
from creatorlens.batching import BatchAssignment, assign_batches, record_rejects
from creatorlens.settings import REPO_ROOT, Settings
from creatorlens.sources import SourceSnapshot
from orchestration.partitions import register_batches
from resources.sources import SourceFiles
from resources.warehouse import engine_from_settings

LOCAL_DAGSTER_YAML = REPO_ROOT / "dagster.yaml"


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


def prepare_dagster_home(settings: Settings) -> Path:
    """Create DAGSTER_HOME (default: under the state folder) with the local dagster.yaml if it has none."""
    home = settings.resolved_dagster_home
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        shutil.copyfile(LOCAL_DAGSTER_YAML, home / "dagster.yaml")
    return home


def local_instance(settings: Settings) -> dg.DagsterInstance:
    """The persistent Dagster instance at DAGSTER_HOME, without touching the process environment."""
    return dg.DagsterInstance.from_config(str(prepare_dagster_home(settings)))


def discover_batches(settings: Settings, instance: dg.DagsterInstance, batch_size: int | None = None) -> Discovery:
    """Read the sources, record their rejects, batch new creators, register partitions. Idempotent."""
    engine = engine_from_settings(settings)
    snapshot = SourceFiles.from_settings(settings).load()
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
        e.event_type_value == "ASSET_MATERIALIZATION" and e.asset_key == PROMOTED_BATCH for e in result.all_events
    )
    return BatchRun(partition, result.run_id, result.success, promoted, failed_checks)
