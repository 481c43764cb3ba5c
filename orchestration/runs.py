"""Batch discovery and local materialisation, shared by the CLI, the tests and the new-creator sensor."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
from sqlalchemy.engine import Engine

from assets.sources.batching import BatchAssignment, assign_batches, record_rejects
from orchestration.operations import stamp_batches, unbatched_creators
from creatorlens.settings import REPO_ROOT, Settings
from assets.sources.parsing import SourceSnapshot
from orchestration.observability import run_logger_config
from assets.common.partitions import register_batches
from resources.sources import SourceFiles
from resources.warehouse import engine_from_settings
from assets.common.keys import PROMOTED_BATCH
from assets.sources.assets import load_snapshot

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


def batch_new_creators(engine: Engine, sources: SourceFiles, batch_size: int) -> tuple[SourceSnapshot, BatchAssignment]:
    """Read every source, record its rejects, and put creators no batch holds into new batches.

    Creators come from the source folders (and whatever else ``SourceFiles.load`` reads) and from
    the warehouse itself: rows inserted into ``creators`` directly, without a batch. Idempotent.
    """
    snapshot = load_snapshot(sources)
    record_rejects(engine, snapshot.rejects)
    usernames = [*snapshot.creators, *unbatched_creators(engine)]
    assignment = assign_batches(engine, usernames, batch_size=batch_size)
    stamp_batches(engine)
    return snapshot, assignment


def discover_batches(settings: Settings, instance: dg.DagsterInstance, batch_size: int | None = None) -> Discovery:
    """Batch new creators and register every batch as a partition right away. Idempotent."""
    snapshot, assignment = batch_new_creators(
        engine_from_settings(settings), SourceFiles.from_settings(settings), batch_size or settings.batch_size
    )
    return Discovery(snapshot, assignment, register_batches(instance, assignment.all_batches))


def materialize_batch(
    job: dg.JobDefinition, instance: dg.DagsterInstance, partition: str, *, log_level: str = "INFO",
    log_format: str = "text",
) -> BatchRun:
    """Run ``job`` for one partition in this process, recorded in ``instance`` like any other run."""
    result = job.execute_in_process(
        partition_key=partition,
        instance=instance,
        raise_on_error=False,
        run_config={"loggers": run_logger_config(log_format, log_level)},
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
