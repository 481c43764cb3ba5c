"""`kill -9` of `creatorlens run` while a pooled (gpu) step holds its slot: the dead run is found,
failed and its slot freed, and the re-run completes and leaves the warehouse identical to an
uninterrupted run of the same batch.

Everything is real: the CLI in a subprocess with its own process group (SIGKILL to the group),
the Dagster instance it writes (SQLite under DAGSTER_HOME), PostgreSQL, the sample images. The
kill point is observed, not timed: the test polls the instance's ``gpu`` pool until the step it
names holds the slot, then kills.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import psycopg
import pytest
import sqlalchemy as sa
from psycopg import sql as pgsql

from assets.common.metadata import GPU_POOL
from assets.sources.sample_data import build_sample_data
from creatorlens.settings import Settings
from orchestration.runs import prepare_dagster_home
from resources.warehouse import dispose_engines, get_engine, normalise_url
from tests.conftest import TEMPLATE_DB

pytestmark = pytest.mark.e2e

BATCH = "batch-00001"
CLI = [sys.executable, "-m", "orchestration.cli"]
# Rows that a run writes, without the columns that differ between two equal runs (serial ids,
# timestamps, run ids). Ordered by their natural keys.
SNAPSHOT_SQL = {
    "creators": "SELECT platform, username, batch_key, followers, bio FROM creators ORDER BY 1, 2",
    "posts": "SELECT post_id, username, likes, comments FROM posts ORDER BY 1",
    "images": "SELECT image_key, status, error_reason, sha256, pdq_hash FROM images ORDER BY 1",
    "duplicates": "SELECT image_key_a, image_key_b, distance, kind FROM image_duplicates ORDER BY 1, 2",
    "vision": "SELECT image_key, persons_status, faces_status, ocr_status, person_count, face_count, text_lines, "
              "shot_type FROM image_vision ORDER BY 1",
    "persons": "SELECT image_key, person_idx, round(score::numeric, 4), crop_key FROM persons ORDER BY 1, 2",
    "ocr": "SELECT image_key, line_idx, text FROM ocr_texts ORDER BY 1, 2",
    "faces": "SELECT image_key, face_idx, round(score::numeric, 4) FROM faces ORDER BY 1, 2",
    "promoted": "SELECT batch_key, count(*) > 0 FROM promotions GROUP BY 1 ORDER BY 1",
}


def _snapshot(url: str) -> dict[str, list]:
    engine = get_engine(url, migrate=False)
    with engine.connect() as conn:
        return {name: [tuple(r) for r in conn.exec_driver_sql(q).all()] for name, q in SNAPSHOT_SQL.items()}


def _env(state: Path, url: str, sample: Path) -> dict[str, str]:
    settings = Settings(state_dir=state, database_url=url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREATORLENS_")}
    env.update({"CREATORLENS_STATE_DIR": str(state), "DATABASE_URL": url, "BATCH_SIZE": "4",
                "CREATORLENS_CSV_DIR": str(sample / "csv"), "CREATORLENS_JSON_DIR": str(sample / "json"),
                "DAGSTER_HOME": str(prepare_dagster_home(settings))})
    return env


def _cli(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    done = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sample")
    build_sample_data(root)
    return root


@pytest.fixture(scope="module")
def reference(pg_server, sample, tmp_path_factory) -> dict[str, list]:
    """The warehouse after one uninterrupted run of the batch, in a database of its own."""
    name = f"ref_{os.getpid()}"
    with psycopg.connect(pg_server.get_uri(), autocommit=True) as conn:
        conn.execute(pgsql.SQL("CREATE DATABASE {} TEMPLATE {}").format(pgsql.Identifier(name),
                                                                       pgsql.Identifier(TEMPLATE_DB)))
    url = normalise_url(pg_server.get_uri(database=name))
    env = _env(tmp_path_factory.mktemp("ref-state"), url, sample)
    _cli(env, "batch")
    _cli(env, "run", "--partition", BATCH)
    snap = _snapshot(url)
    dispose_engines()
    return snap


def _wait_for_slot(instance: dg.DagsterInstance, step: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, (proc.stdout.read() or b"").decode()[-3000:]
        claimed = instance.event_log_storage.get_concurrency_info(GPU_POOL).claimed_slots
        if any(step in (slot.step_key or "") for slot in claimed):
            return
        time.sleep(0.05)
    raise AssertionError(f"step {step} never held the {GPU_POOL} slot")


@pytest.mark.parametrize("step", ["vision__persons", "vision__ocr"])
def test_kill_during_a_pooled_step_frees_the_slot_and_the_rerun_matches(step, reference, sample, tmp_path,
                                                                        database_url):
    state = tmp_path / "state"
    env = _env(state, database_url, sample)
    _cli(env, "batch")
    instance = dg.DagsterInstance.from_config(env["DAGSTER_HOME"])

    proc = subprocess.Popen([*CLI, "run", "--partition", BATCH], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    _wait_for_slot(instance, step, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    [killed] = instance.get_runs()
    assert killed.status == dg.DagsterRunStatus.STARTED  # what Dagster alone is left with
    assert instance.event_log_storage.get_concurrency_info(GPU_POOL).claimed_slots

    status = _cli(env, "status")
    assert f"run {killed.run_id[:8]} ({BATCH})" in status.stdout and "marked failed" in status.stdout
    assert instance.get_run_by_id(killed.run_id).status == dg.DagsterRunStatus.FAILURE
    assert not instance.event_log_storage.get_concurrency_info(GPU_POOL).claimed_slots

    _cli(env, "run", "--partition", BATCH, timeout=600)  # before: waited on the dead run's slot forever
    assert _snapshot(database_url) == reference
    with get_engine(database_url, migrate=False).connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM images")).scalar_one() == len(reference["images"]) > 0
