"""Failed runs land in the warehouse (run-failure sensor) and `creatorlens status` shows batch states.

Two batches of a real pipeline on a real instance at DAGSTER_HOME: one promoted, one whose
source CSV is replaced by a file without a username column before its run, so the run fails in
``raw_sources`` for a real reason.
"""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import pytest
from click.testing import CliRunner

from assets.sources.sample_data import write_creators_csv
from creatorlens.settings import Settings
from orchestration.cli import cli
from orchestration.cli.status import batch_state, collect_status
from orchestration.definitions import build_definitions
from orchestration.jobs import INGEST_JOB
from orchestration.operations import last_failures
from orchestration.runs import discover_batches, local_instance, materialize_batch
from orchestration.sensors import BATCH_FAILURE_SENSOR, batch_failure_sensor
from resources.warehouse import Warehouse

pytestmark = pytest.mark.e2e


@pytest.fixture
def pipeline(tmp_path, database_url):
    csv = write_creators_csv(tmp_path / "csv" / "export.csv", ["ann.a", "bob.b", "cat.c", "dan.d", "eve.e"])
    settings = Settings(state_dir=tmp_path / "state", database_url=database_url, csv_dir=csv.parent,
                        json_dir=tmp_path / "no-json", batch_size=2)
    instance = local_instance(settings)
    discover_batches(settings, instance)
    job = build_definitions(settings).resolve_job_def(INGEST_JOB)
    assert materialize_batch(job, instance, "batch-00001").promoted
    # A misconfiguration fails the batch's first step: a CSV header map naming a field that does not
    # exist. (An unmappable CSV no longer does: it is a file-level reject and the rest loads.)
    broken = settings.model_copy(update={"csv_header_map": '{"handle_typo": ["IG"]}'})
    failed = materialize_batch(build_definitions(broken).resolve_job_def(INGEST_JOB), instance, "batch-00002")
    assert not failed.success
    yield settings, instance, failed.run_id
    instance.dispose()


def _failure_context(instance: dg.DagsterInstance, run_id: str, settings: Settings) -> dg.RunFailureSensorContext:
    event = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)[0].dagster_event
    return dg.build_run_status_sensor_context(
        sensor_name=BATCH_FAILURE_SENSOR, dagster_event=event, dagster_instance=instance,
        dagster_run=instance.get_run_by_id(run_id), resources={"warehouse": Warehouse.from_settings(settings)},
    ).for_run_failure()


def test_failure_sensor_records_the_batch_step_and_error_once(pipeline, engine):
    settings, instance, run_id = pipeline
    for _ in range(2):  # a re-delivered failure stays one row
        batch_failure_sensor(_failure_context(instance, run_id, settings))
    rows = last_failures(engine)
    assert len(rows) == 1
    failed_at, batch, job, steps, error_class, error = rows[0]
    assert (batch, job, steps, error_class) == ("batch-00002", INGEST_JOB, "raw_sources", "ValueError")
    assert "unknown field(s) in header map" in error and failed_at is not None


def test_status_lists_batches_by_state_and_the_last_failures(pipeline):
    settings, instance, run_id = pipeline
    batch_failure_sensor(_failure_context(instance, run_id, settings))
    states = {s.batch_key: s.state for s in collect_status(Warehouse.from_settings(settings).get_engine(), instance)}
    assert states == {"batch-00001": "promoted", "batch-00002": "failed", "batch-00003": "registered"}

    env = {"CREATORLENS_STATE_DIR": str(settings.state_dir), "DATABASE_URL": settings.database_url,
           "DAGSTER_HOME": str(settings.resolved_dagster_home)}
    out = CliRunner().invoke(cli, ["status"], env=env, catch_exceptions=False).output
    assert "== batches by state ==" in out and "== last failures ==" in out
    by_state = out.split("== batches (")[0]
    for state in ("promoted", "failed", "registered"):
        assert state in by_state
    assert "batch-00002" in out and "raw_sources" in out and "ValueError" in out


def test_batch_state_precedence():
    t1, t2 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    kw = {"registered": True, "materialised": True}
    assert batch_state(**kw, last_promoted=t1, last_failed=t2, latest_run_status="FAILURE") == "failed"
    assert batch_state(**kw, last_promoted=t2, last_failed=t1, latest_run_status="SUCCESS") == "promoted"
    assert batch_state(**kw, last_promoted=t2, last_failed=None, latest_run_status="STARTED") == "running"
    assert batch_state(**kw, last_promoted=None, last_failed=None, latest_run_status="QUEUED") == "queued"
    assert batch_state(**kw, last_promoted=None, last_failed=None, latest_run_status=None) == "materialised"
    assert batch_state(registered=False, materialised=False, last_promoted=None, last_failed=None,
                       latest_run_status=None) == "unregistered"
