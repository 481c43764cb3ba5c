"""Batch discovery and local materialisation, shared by the CLI, the tests and the new-creator sensor."""

from __future__ import annotations

import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import psutil
from sqlalchemy.engine import Engine

from assets.common.keys import PROMOTED_BATCH
from assets.common.partitions import register_batches
from assets.sources.assets import load_snapshot
from assets.sources.batching import BatchAssignment, assign_batches, record_rejects, record_warnings
from assets.sources.parsing import SourceSnapshot
from creatorlens.settings import REPO_ROOT, Settings
from orchestration.observability import run_logger_config
from orchestration.operations import retryable_failed_images, stamp_batches, unbatched_creators
from orchestration.schedules import batch_pipeline_selection, changed_code_versions
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
    failed_checks: list[str] = field(default_factory=list)  # ERROR severity: what blocked a promotion
    warnings: list[str] = field(default_factory=list)  # WARN severity: e.g. a stage skipped for want of weights


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
    """Read every source, record its rejects and warnings, and put creators no batch holds into new batches.

    Creators come from the source folders (and whatever else ``assets.sources.assets.load_snapshot`` reads) and from
    the warehouse itself: rows inserted into ``creators`` directly, without a batch. Idempotent.
    """
    snapshot = load_snapshot(sources)
    record_rejects(engine, snapshot.rejects)
    record_warnings(engine, snapshot.warnings)
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
    log_format: str = "text", assets: list[dg.AssetKey] | None = None,
) -> BatchRun:
    """Run ``job`` (or only ``assets`` of it) for one partition in this process, recorded in ``instance``."""
    result = job.execute_in_process(
        partition_key=partition,
        asset_selection=assets,
        instance=instance,
        tags=local_run_tags(),
        raise_on_error=False,
        run_config={"loggers": run_logger_config(log_format, log_level)},
    )
    evaluations = [e.asset_check_evaluation_data for e in result.all_events
                   if e.event_type_value == "ASSET_CHECK_EVALUATION" and not e.asset_check_evaluation_data.passed]
    failed_checks = [ev.check_name for ev in evaluations if ev.severity == dg.AssetCheckSeverity.ERROR]
    warnings = [ev.check_name for ev in evaluations if ev.severity != dg.AssetCheckSeverity.ERROR]
    promoted = any(
        e.event_type_value == "ASSET_MATERIALIZATION" and e.asset_key == PROMOTED_BATCH for e in result.all_events
    )
    if assets is not None and PROMOTED_BATCH not in assets:  # a partial re-run of a promoted batch
        promoted = result.success and not failed_checks
    return BatchRun(partition, result.run_id, result.success, promoted, failed_checks, warnings)


# ---- pools -------------------------------------------------------------------------------

def job_pools(job: dg.JobDefinition) -> set[str]:
    """The concurrency pools the steps of ``job`` claim (``gpu``)."""
    return {op.pool for op in job.graph.iterate_op_defs() if op.pool}


def ensure_pool_limits(instance: dg.DagsterInstance, pools: set[str]) -> list[str]:
    """Create the limit row of every pool the instance has no row for yet, at its default limit;
    return the pools created. Idempotent, and never touches a limit an operator set.

    Run workers create a pool's row lazily, on the first slot claim. On PostgreSQL storage two runs
    claiming a new pool at once race in Dagster's ``initialize_concurrency_limit_to_default``: the
    loser's INSERT hits the unique key, which aborts its transaction, so its follow-up UPDATE fails
    and the step — a good batch — fails (dagster-io/dagster#33552, open for 1.13). The sensors call
    this once per tick, one at a time, so the row exists before any two runs can claim it.
    """
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits or instance.global_op_concurrency_default_limit is None:
        return []
    known = {limit.name for limit in storage.get_pool_limits()}
    created = []
    for pool in sorted(pools - known):
        if storage.initialize_concurrency_limit_to_default(pool):
            created.append(pool)
    return created


# ---- runs whose process died ---------------------------------------------------------------

HOST_TAG = "creatorlens/host"
_LIVE_STATUSES = [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.CANCELING]


@dataclass(frozen=True)
class ReapedRun:
    run_id: str
    partition: str | None
    pid: int


def local_run_tags() -> dict[str, str]:
    """Tags of a run executed in this process (the CLI): which host may judge whether it still lives."""
    return {HOST_TAG: socket.gethostname()}


def _worker_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """The pid of the process that started executing the run (from its RUN_START event)."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.RUN_START, limit=1).records
    event = records[0].event_log_entry.dagster_event if records else None
    return event.pid if event is not None else None


def _alive(pid: int, since: float | None) -> bool:
    """Whether ``pid`` is still the process that started at ``since`` (a reused pid started later)."""
    try:
        created = psutil.Process(pid).create_time()
    except psutil.Error:
        return False
    return since is None or created <= since + 2.0


def reap_dead_runs(instance: dg.DagsterInstance) -> list[ReapedRun]:
    """Mark failed every unfinished run whose worker process is gone, and free its pool slots.

    A ``kill -9`` of ``creatorlens run`` (or of a run worker under ``dagster dev``) leaves its run
    STARTED and its ``gpu`` slot held, so the next run waits forever; Dagster's run monitoring
    cannot see a dead worker of the default run launcher, and the CLI has no daemon at all. The
    pid comes from the run's RUN_START event. Only runs this host can judge are touched: those
    tagged with this host (CLI runs), or every run when the instance launches runs as local
    processes (``DefaultRunLauncher``, as ``dagster dev`` does); containers' pids mean nothing here.
    """
    host = socket.gethostname()
    local_launcher = isinstance(instance.run_launcher, dg.DefaultRunLauncher)
    reaped: list[ReapedRun] = []
    for record in instance.get_run_records(dg.RunsFilter(statuses=_LIVE_STATUSES)):
        run = record.dagster_run
        if run.tags.get(HOST_TAG, host if local_launcher else None) != host:
            continue
        pid = _worker_pid(instance, run.run_id)
        if pid is None or _alive(pid, record.start_time):
            continue  # not started yet (the daemon's start timeout covers it), or still running
        instance.report_run_failed(run, f"run worker (pid {pid}) is gone: killed or crashed; marked failed "
                                        "and its pool slots freed by creatorlens")
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        reaped.append(ReapedRun(run.run_id, run.tags.get("dagster/partition"), pid))
    return reaped


# ---- what needs running --------------------------------------------------------------------


@dataclass(frozen=True)
class BatchPlan:
    """One batch to run, why, and which assets (``None``: the whole job)."""

    partition: str
    reason: str
    assets: list[dg.AssetKey] | None = None


def plan_batches(instance: dg.DagsterInstance, asset_graph, engine: Engine, partitions: list[str]) -> list[BatchPlan]:
    """What of ``partitions`` is missing or stale, in Dagster's own terms, in partition order:

    * never promoted (no materialisation of ``warehouse/promoted_batch`` for it): the whole job;
    * promoted, but an asset's code version (a model version, for model stages) differs from the
      one its last materialisation of the batch ran with: that asset and what lies downstream;
    * promoted, with images that failed transiently (network, timeout, 429/5xx): the whole job,
      which fetches only those again (stored blobs are content-addressed and kept).

    Up-to-date batches are left out: a plain ``creatorlens run`` after adding one creator runs one batch.
    """
    promoted = instance.get_materialized_partitions(PROMOTED_BATCH)
    done = [p for p in partitions if p in promoted]
    pipeline = batch_pipeline_selection().resolve(asset_graph)
    changed = changed_code_versions(instance, asset_graph, sorted(pipeline, key=str), done) if done else {}
    retry = retryable_failed_images(engine, done) if done else {}
    plans: list[BatchPlan] = []
    for key in partitions:
        if key not in promoted:
            plans.append(BatchPlan(key, "not promoted yet"))
        elif key in retry:
            plans.append(BatchPlan(key, f"{retry[key]} image(s) failed transiently: fetching them again"))
        elif changed.get(key):
            stale = dg.AssetSelection.assets(*changed[key]).downstream().resolve(asset_graph) & pipeline
            names = ", ".join(sorted(k.to_user_string() for k in changed[key]))
            plans.append(BatchPlan(key, f"code version changed: {names}",
                                   sorted(stale, key=lambda k: k.to_user_string())))
    return plans
