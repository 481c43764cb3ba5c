"""`creatorlens warehouse start|stop|status` and the commands' warehouse sessions, on real processes.

* `warehouse start` keeps the server after the command ends; other commands use it and leave it.
* A command that finds no server starts one for its duration and stops it afterwards.
* A server whose owner was killed (`kill -9` of `make ui`, of a run) is reported as such, reused
  by the next command, which adopts it and stops it when done: nothing is left running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from creatorlens.settings import REPO_ROOT
from resources import pgserver

pytestmark = pytest.mark.e2e


def _cli(state, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CREATORLENS_", "DAGSTER_", "DATABASE_URL"))}
    env.update({"CREATORLENS_STATE_DIR": str(state), "PYTHONPATH": str(REPO_ROOT)})
    done = subprocess.run([sys.executable, "-m", "orchestration.cli", *args], env=env, capture_output=True,
                          text=True, timeout=180)
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_start_keeps_it_commands_leave_it_stop_ends_it(tmp_path):
    state = tmp_path / "state"
    pgdata = state / "pgdata"
    assert _cli(state, "warehouse", "status", check=False).returncode == 3
    assert "started" in _cli(state, "warehouse", "start").stdout
    assert "already running" in _cli(state, "warehouse", "start").stdout
    _cli(state, "init")  # uses the running server
    assert pgserver.status(pgdata).running, "a command stopped a server it did not start"
    assert "kept until" in _cli(state, "warehouse", "status").stdout
    assert "stopped" in _cli(state, "warehouse", "stop").stdout
    assert not pgserver.status(pgdata).running
    assert _cli(state, "warehouse", "status", check=False).returncode == 3


def test_a_command_stops_what_it_started(tmp_path):
    state = tmp_path / "state"
    _cli(state, "init")
    status = pgserver.status(state / "pgdata")
    assert status.initialised and not status.running


def test_a_server_whose_owner_was_killed_is_adopted_and_stopped(tmp_path):
    state = tmp_path / "state"
    pgdata = state / "pgdata"
    owner = subprocess.Popen([sys.executable, "-c", (
        "import os, signal, sys; sys.path.insert(0, sys.argv[2]); from pathlib import Path;"
        "from resources import pgserver; pgserver.start(Path(sys.argv[1])); print('up', flush=True);"
        "os.kill(os.getpid(), signal.SIGKILL)"), str(pgdata), str(REPO_ROOT)], stdout=subprocess.PIPE, text=True)
    assert owner.stdout.readline().strip() == "up"
    assert owner.wait(timeout=60) == -signal.SIGKILL
    stale = pgserver.status(pgdata)
    assert stale.running and stale.owner_pid == owner.pid and not stale.owner_alive
    assert "no longer running" in _cli(state, "warehouse", "status").stdout

    _cli(state, "init")  # reuses the orphan, adopts it, stops it at the end
    assert not pgserver.status(pgdata).running


def test_an_invalid_setting_is_one_clear_line_not_a_traceback(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CREATORLENS_", "DAGSTER_", "DATABASE_URL"))}
    env.update({"CREATORLENS_STATE_DIR": str(tmp_path), "PYTHONPATH": str(REPO_ROOT), "BATCH_SIZE": "abc"})
    done = subprocess.run([sys.executable, "-m", "orchestration.cli", "warehouse", "status"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "invalid setting" in done.stderr and "BATCH_SIZE" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
