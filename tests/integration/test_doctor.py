"""`creatorlens doctor` on real processes: a fresh state, a stopped and a started embedded warehouse,
tampered migrations, an unreachable MongoDB and PostgreSQL, missing source folders, low disk.

Exit status 0 means nothing needed is missing (notes allowed): a stopped embedded warehouse is
a note, since every command starts it. Each failure is a ✗ line with its fix and exit status 1,
never a traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psycopg
import pytest

from creatorlens.settings import REPO_ROOT
from resources import pgserver

pytestmark = pytest.mark.e2e


def _doctor(state, *args: str, **env_vars: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CREATORLENS_", "DAGSTER_", "DATABASE_URL", "MONGODB_URL", "LLM_"))}
    env.update({"CREATORLENS_STATE_DIR": str(state), "PYTHONPATH": str(REPO_ROOT), "PYTHONIOENCODING": "utf-8"})
    env.update(env_vars)
    done = subprocess.run([sys.executable, "-m", "orchestration.cli", *args], env=env, capture_output=True,
                          text=True, timeout=180)
    assert "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr
    return done


def _line(out: str, name: str) -> str:
    found = [line for line in out.splitlines() if line[2:].startswith(name + " ")]
    assert len(found) == 1, f"no single {name!r} line in:\n{out}"
    return found[0]


def test_fresh_state_is_ok_with_notes_and_writes_nothing(tmp_path):
    state = tmp_path / "state"
    done = _doctor(state, "doctor")
    assert done.returncode == 0, done.stdout
    out = done.stdout
    assert _line(out, "warehouse").startswith("–") and "creatorlens init" in _line(out, "warehouse")
    assert "creatorlens sample-data" in _line(out, "sources: csv")
    assert _line(out, "mongodb").startswith("–")
    assert _line(out, "profile API").startswith("–") and _line(out, "LLM").startswith("–")
    assert "creatorlens models pull image_embedder" in _line(out, "weights: image_embedder")
    assert _line(out, "weights: ocr").startswith("✓")
    assert _line(out, "disk").startswith("✓")
    assert "0 failed" in out
    assert not state.exists(), "doctor created the state folder"


def test_stopped_then_started_warehouse(tmp_path):
    state = tmp_path / "state"
    pgdata = state / "pgdata"
    init = _doctor(state, "init")
    assert init.returncode == 0, init.stdout + init.stderr

    stopped = _doctor(state, "doctor")
    assert stopped.returncode == 0, stopped.stdout
    line = _line(stopped.stdout, "warehouse")
    assert line.startswith("–") and "stopped" in line and "creatorlens warehouse start" in line
    assert not pgserver.status(pgdata).running, "doctor started the warehouse"

    pgserver.start(pgdata)
    try:
        up = _doctor(state, "doctor")
        assert up.returncode == 0, up.stdout
        assert _line(up.stdout, "warehouse").startswith("✓ warehouse")
        assert "pgvector" in _line(up.stdout, "warehouse")
        migrations = _line(up.stdout, "migrations")
        assert migrations.startswith("✓") and "checksums match" in migrations

        with psycopg.connect(pgserver.admin_url(pgdata, pgserver.DATABASE), autocommit=True) as conn:
            conn.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE version = "
                         "(SELECT min(version) FROM schema_migrations)")
            tampered = _doctor(state, "doctor")
            assert tampered.returncode == 1, tampered.stdout
            line = _line(tampered.stdout, "migrations")
            assert line.startswith("✗") and "changed after they were applied" in line and "→" in line

        assert pgserver.status(pgdata).running, "doctor stopped a server it did not start"
    finally:
        pgserver.stop(pgdata)


def test_pending_migrations_are_a_note(tmp_path):
    state = tmp_path / "state"
    pgdata = state / "pgdata"
    pgserver.start(pgdata)  # started, never migrated
    try:
        done = _doctor(state, "doctor")
        assert done.returncode == 0, done.stdout
        line = _line(done.stdout, "migrations")
        assert line.startswith("–") and "pending" in line and "creatorlens init" in line
    finally:
        pgserver.stop(pgdata)


def test_unreachable_mongodb_fails_within_the_timeout(tmp_path):
    started = time.monotonic()
    done = _doctor(tmp_path / "state", "doctor", "--timeout", "1", MONGODB_URL="mongodb://127.0.0.1:9/")
    assert time.monotonic() - started < 60
    assert done.returncode == 1, done.stdout
    line = _line(done.stdout, "mongodb")
    assert line.startswith("✗") and "not reachable within 1 s" in line and "MONGODB_URL" in line.split("→")[1]
    assert "1 failed" in done.stdout


def test_unreachable_database_url_fails_without_showing_the_password(tmp_path):
    done = _doctor(tmp_path / "state", "doctor", "--timeout", "1",
                   DATABASE_URL="postgresql://someone:s3cret@127.0.0.1:9/creatorlens")
    assert done.returncode == 1, done.stdout
    line = _line(done.stdout, "warehouse")
    assert line.startswith("✗") and "cannot connect" in line and "DATABASE_URL" in line
    assert "s3cret" not in done.stdout + done.stderr


def test_missing_and_present_source_folders(tmp_path):
    json_dir = tmp_path / "json"
    json_dir.mkdir()
    (json_dir / "web_profile_info(a.user)_1.json").write_text("{}")
    (json_dir / "b.user_1.json.xz").write_bytes(b"")
    (json_dir / "notes.txt").write_text("not a dump")
    done = _doctor(tmp_path / "state", "doctor", CREATORLENS_CSV_DIR=str(tmp_path / "no-such-folder"),
                   CREATORLENS_JSON_DIR=str(json_dir))
    assert done.returncode == 1, done.stdout
    csv = _line(done.stdout, "sources: csv")
    assert csv.startswith("✗") and "does not exist" in csv and "CREATORLENS_CSV_DIR" in csv
    assert _line(done.stdout, "sources: json").startswith("✓") and "2 JSON files" in done.stdout


def test_low_disk_and_half_configured_llm_fail(tmp_path):
    done = _doctor(tmp_path / "state", "doctor", "--min-free-gib", "1000000", LLM_BASE_URL="http://127.0.0.1:9/v1")
    assert done.returncode == 1, done.stdout
    assert _line(done.stdout, "disk").startswith("✗") and "--min-free-gib" in _line(done.stdout, "disk")
    llm = _line(done.stdout, "LLM")
    assert llm.startswith("✗") and "LLM_MODEL" in llm
    assert "2 failed" in done.stdout


def test_help_says_what_it_checks(tmp_path):
    done = _doctor(tmp_path / "state", "doctor", "--help")
    assert done.returncode == 0
    for word in ("warehouse", "migrations", "sources", "mongodb", "LLM", "weights", "chromium", "disk",
                 "--min-free-gib", "--timeout", "Exit status"):
        assert word in done.stdout, word
