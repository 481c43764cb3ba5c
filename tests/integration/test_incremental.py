"""Incremental by default: a plain run processes what is missing or stale, never everything again.

Real instance, real warehouse, the sample data; the CLI's own planner (``plan_batches``) decides.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from assets.sources.sample_data import build_sample_data
from creatorlens.settings import Settings
from orchestration.definitions import build_definitions
from orchestration.jobs import INGEST_JOB
from orchestration.runs import discover_batches, materialize_batch, plan_batches, prepare_dagster_home

pytestmark = pytest.mark.e2e


def _promotions(engine) -> list[tuple[str, int]]:
    with engine.connect() as conn:
        return conn.exec_driver_sql("SELECT batch_key, count(*) FROM promotions GROUP BY 1 ORDER BY 1").all()


def test_only_new_or_transiently_failed_batches_are_planned(tmp_path, database_url, dagster_instance, engine):
    sample = build_sample_data(tmp_path / "sample")
    settings = Settings(state_dir=tmp_path / "state", database_url=database_url, batch_size=100,
                        csv_dir=sample.csv_paths[0].parent, json_dir=sample.json_dirs[0])
    defs = build_definitions(settings)
    job, graph = defs.resolve_job_def(INGEST_JOB), defs.resolve_asset_graph()
    [first] = discover_batches(settings, dagster_instance).registered
    assert [(p.partition, p.reason) for p in plan_batches(dagster_instance, graph, engine, [first])] == [
        (first, "not promoted yet")]
    assert materialize_batch(job, dagster_instance, first).promoted
    assert plan_batches(dagster_instance, graph, engine, [first]) == []  # up to date: nothing to run

    # One new creator arrives: one new batch, and only it is planned.
    doc = {"data": {"user": {"username": "new.arrival", "full_name": "New", "biography": "late",
                             "edge_followed_by": {"count": 5}, "edge_owner_to_timeline_media": {"edges": []}}}}
    (sample.json_dirs[0] / "web_profile_info(new.arrival)_1.json").write_text(json.dumps(doc))
    discovery = discover_batches(settings, dagster_instance)
    [second] = discovery.registered
    keys = discovery.assignment.all_batches
    assert [p.partition for p in plan_batches(dagster_instance, graph, engine, keys)] == [second]
    assert materialize_batch(job, dagster_instance, second).promoted
    assert plan_batches(dagster_instance, graph, engine, keys) == []
    assert _promotions(engine) == [(first, 1), (second, 1)]  # no promotion row for a batch not re-run

    # An image that failed on the network is worth another try: its batch is planned again.
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE images SET status = 'failed', error_reason = 'network_error', "
                             "error = 'network_error: ConnectError' WHERE image_key = (SELECT min(image_key) "
                             "FROM images WHERE batch_key = %(b)s AND status = 'ok')", {"b": first})
    [retry] = plan_batches(dagster_instance, graph, engine, keys)
    assert retry.partition == first and "failed transiently" in retry.reason and retry.assets is None


def test_cli_run_says_what_is_up_to_date(tmp_path, database_url):
    """`creatorlens run` without options after everything ran: nothing is run again."""
    sample = build_sample_data(tmp_path / "sample")
    settings = Settings(state_dir=tmp_path / "state", database_url=database_url)
    env = {"CREATORLENS_STATE_DIR": str(settings.state_dir), "DATABASE_URL": database_url, "BATCH_SIZE": "100",
           "CREATORLENS_CSV_DIR": str(sample.csv_paths[0].parent), "CREATORLENS_JSON_DIR": str(sample.json_dirs[0]),
           "DAGSTER_HOME": str(prepare_dagster_home(settings)), "PATH": "/usr/bin:/bin"}
    cli = [sys.executable, "-m", "orchestration.cli"]
    subprocess.run([*cli, "batch"], env=env, check=True, capture_output=True, timeout=300)
    runs = [subprocess.run([*cli, "run"], env=env, capture_output=True, text=True, timeout=600) for _ in range(2)]
    assert runs[0].returncode == 0, runs[0].stdout + runs[0].stderr
    assert "0 of 1 batches up to date; running 1" in runs[0].stdout
    assert runs[1].returncode == 0 and "1 of 1 batches up to date; running 0" in runs[1].stdout
