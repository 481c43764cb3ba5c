"""Sensors: new creators become batches and runs; failed runs are recorded per batch.

``new_creator_sensor`` (built by :func:`build_new_creator_sensor`) reads every source through the
backbone's discovery path (:func:`orchestration.runs.batch_new_creators`: the source folders,
whatever else ``assets.sources.assets.load_snapshot`` reads, and creators inserted straight into the warehouse),
puts creators no batch holds into new batches, and answers with one ``SensorResult``: the new
partitions, one run per new batch (``run_key`` = job + batch, so Dagster launches it once), and a
cursor. The cursor is a fingerprint of what discovery would read (file names, sizes and mtimes,
the warehouse's highest creator id), taken *before* reading, so an idle tick costs a few ``stat``
calls and one indexed query, and a change during a tick is seen by the next one. (The sensor's
own writes go to ``creator_batches``, outside the fingerprint; a promotion adds creators, so the
tick after one rescans once and finds nothing.)

The "new" batches are the warehouse's batches the instance does not know yet, not only the ones
made in this tick: if a tick crashed after writing its batches but before Dagster stored its
result, the next tick still registers and runs them.

``flagged_images_sensor`` answers the review app's "flag for re-analysis": one run of the batch
that holds flagged images per newest flag (``run_key`` = batch + newest flag id, so a flag is run
for once, and a flag raised later runs the batch again); the vision promotion of that run resolves
the flags raised before the run began.

``dead_run_sensor`` fails the runs whose worker process died and frees their pool slots
(:func:`orchestration.runs.reap_dead_runs`; the CLI does the same before it runs anything).

``batch_failure_sensor`` writes every failed run (its batch, failed steps and error) into the
warehouse table ``batch_failures``, which ``creatorlens status`` reads.

``upload_sensor`` turns photos uploaded in the app (table ``uploads``, ``pending``) into one run per
batch of the sources, image, vision and tagging stages and their promotions
(:func:`upload_run_selection`; ``raw_sources`` reads each upload as a post of its creator) and marks
them ``processing`` under that run's ``run_key`` (a hash of the upload ids: Dagster launches it once;
a tick that died before its request was launched asks again under the same key).
``upload_status_sensor`` follows those runs: it links each upload to its run id and, once the run
ended, records ``completed`` (image ok and tagged), ``partial`` (image ok, no tags, and why) or
``failed`` (the image row's reason, or the run's failure). It polls the uploads in ``processing``
(few) rather than listening for run events: one place for success, failure and cancellation, and
nothing is missed when the daemon was down while a run ended.
"""

from __future__ import annotations

import hashlib
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
from dagster_shared.error import SerializableErrorInfo
from sqlalchemy.engine import Engine

from assets.common.metadata import GROUP_PROFILES
from assets.common.partitions import creator_batches, missing_partitions
from assets.sources.parsing import JSON_SUFFIXES
from creatorlens.queries import load_queries
from orchestration.jobs import INGEST_JOB, ingest_batch_job
from orchestration.operations import BatchFailure, change_marker, open_flags_by_batch, record_failure
from orchestration.runs import batch_new_creators, ensure_pool_limits, job_pools, reap_dead_runs
from orchestration.schedules import batch_pipeline_selection
from resources.sources import SourceFiles
from resources.warehouse import Warehouse

NEW_CREATOR_SENSOR = "new_creator_sensor"
FLAGGED_IMAGES_SENSOR = "flagged_images_sensor"
BATCH_FAILURE_SENSOR = "batch_failure_sensor"
DEAD_RUN_SENSOR = "dead_run_sensor"
UPLOAD_SENSOR = "upload_sensor"
UPLOAD_STATUS_SENSOR = "upload_status_sensor"
UPLOAD_RUN_TAG = "creatorlens/upload_run"  # the run_key of an upload run, on the run: how its uploads find it
UPLOAD_INTERVAL_SECONDS = 30
DEAD_RUN_INTERVAL_SECONDS = 30
TRIGGER_TAG = "creatorlens/trigger"
# Sources the fingerprint cannot see (a MongoDB collection) are re-read at least this often.
FULL_RESCAN_SECONDS = 15 * 60
SENSOR_INTERVAL_SECONDS = 60


def _file_state(paths: list[Path]) -> list[str]:
    states = []
    for path in paths:
        try:
            st = path.stat()
        except FileNotFoundError:  # removed between listing and stat: the next tick sees it
            continue
        states.append(f"{path}\0{st.st_size}\0{st.st_mtime_ns}")
    return states


def _json_file_states(directory: Path) -> list[str]:
    """``path, size, mtime`` of the files ``read_json_dumps`` reads: ``*.json`` and ``*.json.xz`` directly in the
    folder, any case.

    One ``scandir`` pass on the entries' own strings and ``stat``: a folder holds one dump per
    creator, so this runs 50,000 times on an idle tick at 50,000 dumps, where building and sorting
    ``pathlib.Path`` objects took four fifths of the fingerprint (1.6 s before, 0.3 s now).
    """
    states = []
    with os.scandir(directory) as entries:
        for entry in entries:
            if not entry.name.lower().endswith(JSON_SUFFIXES):
                continue
            try:
                if not entry.is_file():
                    continue
                st = entry.stat()
            except FileNotFoundError:  # removed between listing and stat: the next tick sees it
                continue
            states.append(f"{entry.path}\0{st.st_size}\0{st.st_mtime_ns}")
    return sorted(states)  # one folder: sorting the states sorts by file name


def source_fingerprint(sources: SourceFiles, engine: Engine, now: float | None = None) -> str:
    """A digest that changes whenever discovery could find something new (cheap: no file is read)."""
    digest = hashlib.sha256()
    states = [*_file_state(sources.csv_paths()), *(s for d in sources.json_dirs() for s in _json_file_states(d))]
    digest.update("\n".join(states).encode())
    digest.update(f"\ncreators\0{change_marker(engine)}\n".encode())
    bucket = int((time.time() if now is None else now) // FULL_RESCAN_SECONDS)
    digest.update(f"rescan\0{bucket}\n".encode())
    return digest.hexdigest()


def ensure_pools(context: dg.SensorEvaluationContext) -> None:
    """Create the rows of the ingest job's pools before runs claim them (``runs.ensure_pool_limits``).
    A storage error is logged, not raised: the next tick tries again, and runs still work on SQLite."""
    repository = context.repository_def
    if repository is None:
        return
    try:
        created = ensure_pool_limits(context.instance, job_pools(repository.get_job(INGEST_JOB)))
    except Exception as exc:  # noqa: BLE001 - a sensor must not fail on this
        context.log.warning(f"could not initialise the pool limits: {type(exc).__name__}: {exc}")
        return
    if created:
        context.log.info(f"initialised pool limits at the instance default: {', '.join(created)}")


def run_key(batch_key: str) -> str:
    """One ingest run per batch, ever, for this sensor (batches never change once made)."""
    return f"{INGEST_JOB}:{batch_key}"


def build_new_creator_sensor(batch_size: int) -> dg.SensorDefinition:
    """The new-creator sensor, cutting new batches of ``batch_size`` creators."""

    @dg.sensor(
        name=NEW_CREATOR_SENSOR,
        job=ingest_batch_job,
        minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Creators no batch holds (source folders, other sources, direct warehouse inserts) → new "
        f"batches of {batch_size}, registered as partitions, one {INGEST_JOB} run each.",
    )
    def new_creator_sensor(
        context: dg.SensorEvaluationContext, warehouse: Warehouse, sources: SourceFiles
    ) -> dg.SensorResult | dg.SkipReason:
        ensure_pools(context)
        engine = warehouse.get_engine()
        fingerprint = source_fingerprint(sources, engine)
        if fingerprint == context.cursor:
            return dg.SkipReason("sources and warehouse unchanged since the last tick")
        snapshot, assignment = batch_new_creators(engine, sources, batch_size)
        new_keys = missing_partitions(context.instance, assignment.all_batches)
        context.log.info(
            f"{len(snapshot.creators)} creators in sources, {assignment.new_creators} newly batched, "
            f"{len(new_keys)} batches to register and run"
        )
        if not new_keys:
            return dg.SensorResult(skip_reason="no creators without a batch", cursor=fingerprint)
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(partition_key=key, run_key=run_key(key), tags={TRIGGER_TAG: NEW_CREATOR_SENSOR})
                for key in new_keys
            ],
            dynamic_partitions_requests=[creator_batches.build_add_request(new_keys)],
            cursor=fingerprint,
        )

    return new_creator_sensor


@dg.sensor(
    name=FLAGGED_IMAGES_SENSOR,
    job=ingest_batch_job,
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Images a reviewer flagged for re-analysis in the review app → one ingest_batch run of their "
    "batch per newest flag; the run's vision promotion resolves the flags raised before it began.",
)
def flagged_images_sensor(context: dg.SensorEvaluationContext, warehouse: Warehouse) -> dg.SensorResult:
    flagged = open_flags_by_batch(warehouse.get_engine())
    known = set(context.instance.get_dynamic_partitions(creator_batches.name))
    requests = [
        dg.RunRequest(partition_key=batch, run_key=f"reanalyse:{batch}:{newest}",
                      tags={TRIGGER_TAG: FLAGGED_IMAGES_SENSOR, "creatorlens/flags": str(count)})
        for batch, newest, count in flagged if batch in known
    ]
    if not requests:
        return dg.SensorResult(skip_reason="no open re-analysis flags")
    context.log.info(f"re-analysing {len(requests)} batches for {sum(c for _, _, c in flagged)} flagged images")
    return dg.SensorResult(run_requests=requests)


def _root_cause(info: SerializableErrorInfo) -> SerializableErrorInfo:
    """The user's exception under Dagster's wrappers (DagsterExecutionStepExecutionError → ValueError)."""
    while info.cause is not None and info.cls_name.startswith("Dagster"):
        info = info.cause
    return info


def _describe(step_key: str | None, info: SerializableErrorInfo) -> str:
    """First line: where and what (``[step] ValueError: …``); then the full chain with tracebacks."""
    root = _root_cause(info)
    head = f"[{step_key}] " if step_key else ""
    return f"{head}{root.cls_name}: {root.message.strip()}\n{info.to_string()}"


def failure_from_context(context: dg.RunFailureSensorContext) -> BatchFailure:
    """The warehouse row for a failed run: its batch, the steps that failed and the first error."""
    run = context.dagster_run
    record = context.instance.get_run_record_by_id(run.run_id)
    ended = record.end_time if record is not None else None
    step_events = context.get_step_failure_events()
    errors = [(e.step_key, e.step_failure_data.error) for e in step_events if e.step_failure_data.error is not None]
    if not errors:  # the run failed outside any step (launch, resources, a killed worker)
        info = getattr(context.failure_event.event_specific_data, "error", None)
        errors = [(None, info)] if info is not None else []
    if errors:
        error_class = _root_cause(errors[0][1]).cls_name
        error = "\n\n".join(_describe(step, info) for step, info in errors)
    else:
        error_class, error = None, context.failure_event.message or "run failed"
    return BatchFailure(
        run_id=run.run_id,
        batch_key=run.tags.get("dagster/partition"),
        job_name=run.job_name,
        failed_steps=[e.step_key for e in step_events if e.step_key],
        error_class=error_class,
        error=error,
        failed_at=datetime.fromtimestamp(ended, tz=UTC) if ended else datetime.now(UTC),
    )


@dg.run_failure_sensor(
    name=BATCH_FAILURE_SENSOR,
    monitor_all_code_locations=True,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Records every failed run (batch, failed steps, error) in the warehouse table batch_failures.",
)
def batch_failure_sensor(context: dg.RunFailureSensorContext, warehouse: Warehouse) -> None:
    failure = failure_from_context(context)
    record_failure(warehouse.get_engine(), failure)
    context.log.info(f"recorded failed run {failure.run_id} of {failure.batch_key or 'no batch'}: {failure.error_class}")


@dg.sensor(
    name=DEAD_RUN_SENSOR,
    minimum_interval_seconds=DEAD_RUN_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Marks failed the runs whose worker process died (kill -9, OOM) and frees their pool slots, "
                "so a held gpu slot never blocks the next run. Local run launcher only.",
)
def dead_run_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    ensure_pools(context)  # this sensor ticks from the daemon's start, before any run is launched
    reaped = reap_dead_runs(context.instance)
    for run in reaped:
        context.log.warning(f"run {run.run_id} ({run.partition or 'no batch'}): worker pid {run.pid} is gone; "
                            "marked failed, pool slots freed")
    return dg.SkipReason(f"{len(reaped)} dead run(s) marked failed" if reaped else "no dead runs")


# ---- uploads -------------------------------------------------------------------------------

def upload_run_selection() -> dg.AssetSelection:
    """What an upload runs: the batch pipeline (the schedules' :func:`batch_pipeline_selection`) less
    the profile stage and what only it feeds (LLM profiles, their promotion): sources (which read the
    uploads as posts), images, vision, tagging and their promotions."""
    return batch_pipeline_selection() - dg.AssetSelection.groups(GROUP_PROFILES).downstream()


def upload_run_key(batch: str, ids: list[int]) -> str:
    digest = hashlib.sha256(",".join(map(str, sorted(ids))).encode()).hexdigest()[:16]
    return f"upload:{batch}:{digest}"


def _uploads_q(name: str) -> str:
    return load_queries("uploads.sql")[name]


@dg.sensor(
    name=UPLOAD_SENSOR,
    job=ingest_batch_job,
    minimum_interval_seconds=UPLOAD_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Photos uploaded for a creator in the app → one run per batch of the sources, image, vision and "
                "tagging stages and their promotions; the uploads are marked processing under its run key.",
)
def upload_sensor(context: dg.SensorEvaluationContext, warehouse: Warehouse) -> dg.SensorResult:
    ensure_pools(context)
    known = set(context.instance.get_dynamic_partitions(creator_batches.name))
    groups: dict[tuple[str, str], list[int]] = {}
    waiting = 0
    with warehouse.get_engine().begin() as conn:
        rows = conn.exec_driver_sql(_uploads_q("uploads_to_launch")).all()
        pending: dict[str, list[int]] = {}
        for row in rows:
            if row.batch_key not in known:  # the new-creator sensor registers it first
                waiting += 1
            elif row.status == "pending":
                pending.setdefault(row.batch_key, []).append(row.id)
            else:  # marked by a tick whose request Dagster has not launched (or not yet): same key again
                groups.setdefault((row.batch_key, row.run_key), []).append(row.id)
        for batch, ids in pending.items():
            key = upload_run_key(batch, ids)
            conn.exec_driver_sql(_uploads_q("uploads_mark_processing"), {"run_key": key, "ids": ids})
            groups.setdefault((batch, key), []).extend(ids)
    if not groups:
        why = f"{waiting} upload(s) wait for their batch to be registered" if waiting else "no new uploads"
        return dg.SensorResult(skip_reason=why)
    selection = sorted(upload_run_selection().resolve(context.repository_def.asset_graph),
                       key=lambda k: k.to_user_string()) if context.repository_def else None
    context.log.info(f"{sum(map(len, groups.values()))} upload(s) → {len(groups)} run(s)")
    return dg.SensorResult(run_requests=[
        dg.RunRequest(partition_key=batch, run_key=key, asset_selection=selection,
                      tags={TRIGGER_TAG: UPLOAD_SENSOR, UPLOAD_RUN_TAG: key, "creatorlens/uploads": str(len(ids))})
        for (batch, key), ids in sorted(groups.items())
    ])


def run_failure_reason(instance: dg.DagsterInstance, run: dg.DagsterRun) -> str:
    """A finished run's failure in one line: the first failed step's error, else the run's own."""
    if run.status == dg.DagsterRunStatus.CANCELED:
        return f"run {run.run_id} was canceled"
    records = instance.get_records_for_run(
        run.run_id, of_type={dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE}).records
    events = [r.event_log_entry.dagster_event for r in records if r.event_log_entry.dagster_event is not None]
    for event in events:
        if event.is_step_failure and event.step_failure_data.error is not None:
            root = _root_cause(event.step_failure_data.error)
            return f"run {run.run_id} failed: [{event.step_key}] {root.cls_name}: {root.message.strip()}"[:1000]
    message = next((r.event_log_entry.message for r in records if r.event_log_entry.message), None)
    return f"run {run.run_id} failed: {message or 'no error recorded'}"[:1000]


def upload_outcome(conn, image_key: str, failure: str | None) -> tuple[str, str | None]:
    """(status, reason) of an upload once its run ended (``failure``: the run's reason, None: success)."""
    image = conn.exec_driver_sql(_uploads_q("upload_image_outcome"), {"image_key": image_key}).one_or_none()
    if image is None:
        return "failed", failure or f"the run made no image {image_key} (its batch's sources did not read the upload)"
    if image.status == "failed":
        return "failed", f"image {image.error_reason}: {image.error or ''}".strip()[:1000]
    if image.tagged:
        return "completed", None
    if failure is not None:
        return "failed", failure
    if not image.embedded:  # the tagging stage records a skip, not an error, when it has no weights
        return "partial", ("image stored and analysed, not tagged: no image embedding (the embedding stage has no "
                           "model weights: `creatorlens models pull image_embedder`)")
    return "partial", "image stored and embedded, but no tag passed its threshold"


def _upload_run(instance: dg.DagsterInstance, run_key: str | None, run_id: str | None) -> dg.DagsterRun | None:
    if run_id:
        return instance.get_run_by_id(run_id)
    if not run_key:
        return None
    runs = instance.get_runs(dg.RunsFilter(tags={UPLOAD_RUN_TAG: run_key}), limit=1)
    return runs[0] if runs else None


_ENDED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


@dg.sensor(
    name=UPLOAD_STATUS_SENSOR,
    minimum_interval_seconds=UPLOAD_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Uploads in processing: linked to their run, then completed (image ok and tagged), partial "
                "(image ok, no tags, with why) or failed (the image's reason, or the run's failure) once it ended.",
)
def upload_status_sensor(context: dg.SensorEvaluationContext, warehouse: Warehouse) -> dg.SkipReason:
    engine = warehouse.get_engine()
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(_uploads_q("uploads_processing")).all()
    by_run: dict[tuple[str | None, str | None], list] = {}
    for row in rows:
        by_run.setdefault((row.run_key, row.run_id), []).append(row)
    outcomes: dict[str, int] = {}
    for (key, run_id), uploads in by_run.items():
        run = _upload_run(context.instance, key, run_id)
        if run is None:
            continue  # not launched yet: upload_sensor asks again under the same key
        failure = None
        if run.status in _ENDED and run.status != dg.DagsterRunStatus.SUCCESS:
            failure = run_failure_reason(context.instance, run)
        with engine.begin() as conn:
            if run_id is None:
                conn.exec_driver_sql(_uploads_q("uploads_link_run"), {"run_key": key, "run_id": run.run_id})
            if run.status not in _ENDED:
                continue
            for upload in uploads:
                status, reason = upload_outcome(conn, upload.image_key, failure)
                conn.exec_driver_sql(_uploads_q("upload_finish"), {"id": upload.id, "status": status,
                                                                  "reason": reason, "run_id": run.run_id})
                outcomes[status] = outcomes.get(status, 0) + 1
    if outcomes:
        context.log.info(f"uploads finished: {outcomes}")
    return dg.SkipReason(f"uploads finished: {outcomes}" if outcomes else f"{len(rows)} upload(s) processing")
