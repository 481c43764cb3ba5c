"""`creatorlens ui` (what `make ui` runs) on the embedded default: the warehouse and `dagster dev` come up,
a sensor reaches the warehouse, and one Ctrl-C stops everything within 10 s with nothing left running.

Real processes: the command in its own session (as a terminal would run it), the embedded
PostgreSQL it starts, the webserver, daemon and code servers of `dagster dev`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from creatorlens.settings import REPO_ROOT
from resources import pgserver

pytestmark = pytest.mark.e2e

SENSOR_TICKS = """query { sensorOrError(sensorSelector: {repositoryLocationName: "creatorlens",
  repositoryName: "__repository__", sensorName: "new_creator_sensor"}) {
  ... on Sensor { sensorState { ticks(limit: 5) { status error { message } skipReason } } } } }"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _left_running(state: Path) -> list[str]:
    """Processes that still belong to this test's state folder or DAGSTER_HOME."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if str(state) in cmd:
            found.append(f"{proc.info['pid']}: {cmd[:160]}")
    return found


def test_ui_starts_warehouse_and_dagster_and_one_ctrl_c_stops_both(tmp_path):
    state = tmp_path / "state"
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CREATORLENS_", "DAGSTER_", "DATABASE_URL"))}
    env.update({"CREATORLENS_STATE_DIR": str(state), "PYTHONPATH": str(REPO_ROOT)})
    log = (tmp_path / "ui.log").open("wb")
    # The restored SIGINT disposition: a shell starts background jobs with SIGINT ignored.
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestration.cli", "ui", "--port", str(port)], env=env, cwd=REPO_ROOT,
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 180
        ticks: list = []
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "ui.log").read_text()[-3000:]
            try:
                answer = httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": SENSOR_TICKS}, timeout=10)
                ticks = (answer.json()["data"]["sensorOrError"].get("sensorState") or {}).get("ticks") or []
            except (httpx.TransportError, KeyError, TypeError, ValueError):
                ticks = []
            if ticks:
                break
            time.sleep(1)
        assert ticks, "the sensor never ticked:\n" + (tmp_path / "ui.log").read_text()[-3000:]
        # The daemon's code server reached the warehouse that `ui` started: no failed tick.
        assert all(t["status"] != "FAILURE" for t in ticks), ticks
        status = pgserver.status(state / "pgdata")
        assert status.running and status.owner_pid == proc.pid

        started = time.monotonic()
        proc.send_signal(signal.SIGINT)  # one Ctrl-C
        proc.wait(timeout=30)
        took = time.monotonic() - started
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
    assert took <= 10, f"Ctrl-C took {took:.1f} s"
    assert not pgserver.status(state / "pgdata").running
    time.sleep(0.5)
    assert _left_running(state) == []
