"""One batch run three ways, side by side: the CLI, and launched from the UI with each executor.

* ``cli``: ``creatorlens run --partition batch-00001``, wall time of the command (what a user waits).
* ``ui/<executor>``: the run submitted over the webserver's GraphQL API (what Materialize does),
  queued, launched by the daemon of a real ``dagster dev``, timed from the submit call to
  SUCCESS as the webserver reports it. ``in_process`` is the default executor
  (``CREATORLENS_RUN_EXECUTOR``); ``multiprocess`` is the forkserver alternative.

Each way gets its own state folder and warehouse database with identical sample data, so no run
profits from another's blobs. Also reported: importing the code location and
``dagster definitions validate``. Prints the ratios against the CLI run measured in this run.

    python bench/ui_vs_cli.py                 # sample batch of 4 creators
    python bench/ui_vs_cli.py --executors in_process
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psycopg
from psycopg import sql as pgsql

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from resources import pgserver  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
BATCH = "batch-00001"
SUBMIT = """mutation($params: ExecutionParams!) { launchPipelineExecution(executionParams: $params) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }"""
STATUS = "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(root: Path, url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CREATORLENS_", "DAGSTER_"))}
    env.update({"CREATORLENS_STATE_DIR": str(root), "DAGSTER_HOME": str(root / "dagster_home"),
                "DATABASE_URL": url, "BATCH_SIZE": str(extra.pop("batch_size")), "PYTHONPATH": str(REPO), **extra})
    return env


def _prepare(pg: Path, name: str, root: Path, batch_size: int, **extra: str) -> dict[str, str]:
    with psycopg.connect(pgserver.admin_url(pg), autocommit=True) as conn:
        conn.execute(pgsql.SQL("CREATE DATABASE {}").format(pgsql.Identifier(name)))
    env = _env(root, pgserver.admin_url(pg, name), batch_size=batch_size, **extra)
    for cmd in (["init"], ["sample-data"], ["batch"]):
        subprocess.run([str(BIN / "creatorlens"), *cmd], env=env, check=True, capture_output=True)
    return env


def time_cli(env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([str(BIN / "creatorlens"), "run", "--partition", BATCH], env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def time_ui(env: dict[str, str], log: Path) -> tuple[float, float]:
    """(seconds from submit to SUCCESS, seconds for dagster dev to come up)."""
    port = _free_port()
    started = time.perf_counter()
    with log.open("wb") as out:
        proc = subprocess.Popen([str(BIN / "dagster"), "dev", "-w", str(REPO / "workspace.yaml"), "-p", str(port)],
                                env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            url = f"http://127.0.0.1:{port}/graphql"
            params = {"selector": {"repositoryLocationName": "creatorlens", "repositoryName": "__repository__",
                                   "jobName": "ingest_batch"},
                      "executionMetadata": {"tags": [{"key": "dagster/partition", "value": BATCH}]}}
            deadline = time.monotonic() + 300
            while True:  # the location may still be loading
                try:
                    answer = httpx.post(url, json={"query": SUBMIT, "variables": {"params": params}}, timeout=30).json()
                    result = answer["data"]["launchPipelineExecution"]
                    if result["__typename"] == "LaunchRunSuccess":
                        break
                except (httpx.TransportError, KeyError, TypeError):
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"could not submit: {log.read_text()[-2000:]}")
                time.sleep(0.5)
            submitted = time.perf_counter()
            up = submitted - started
            run_id = result["run"]["runId"]
            while True:
                status = httpx.post(url, json={"query": STATUS, "variables": {"id": run_id}}, timeout=30).json()
                status = status["data"]["runOrError"]["status"]
                if status in ("SUCCESS", "FAILURE", "CANCELED"):
                    break
                time.sleep(0.2)
            if status != "SUCCESS":
                raise RuntimeError(f"run {run_id} ended {status}: {log.read_text()[-3000:]}")
            return time.perf_counter() - submitted, up
        finally:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def time_import(env: dict[str, str]) -> tuple[float, float]:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import orchestration.definitions"], env=env, check=True, cwd=REPO)
    imported = time.perf_counter() - start
    start = time.perf_counter()
    subprocess.run([str(BIN / "dagster"), "definitions", "validate", "-w", str(REPO / "workspace.yaml")], env=env,
                   check=True, cwd=REPO, capture_output=True)
    return imported, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--executors", nargs="+", default=["in_process", "multiprocess"],
                        choices=["in_process", "multiprocess"])
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-ui-"))
    pg = tmp / "pgdata"
    pgserver.start(pg)
    try:
        cli_env = _prepare(pg, "bench_cli", tmp / "cli", args.batch_size)
        imported, validate = time_import(cli_env)
        cli_s = time_cli(cli_env)
        rows = [("cli", cli_s, 1.0, None)]
        for executor in args.executors:
            env = _prepare(pg, f"bench_{executor}", tmp / executor, args.batch_size,
                           CREATORLENS_RUN_EXECUTOR=executor)
            ui_s, up = time_ui(env, tmp / f"{executor}.log")
            rows.append((f"ui/{executor}", ui_s, ui_s / cli_s, up))
    finally:
        pgserver.stop(pg)
    print(f"one batch of {args.batch_size} sample creators, {os.cpu_count()} cores")
    print(f"import orchestration.definitions: {imported:.2f} s; dagster definitions validate: {validate:.2f} s")
    print(f"{'path':<18}{'seconds':>9}{'vs cli':>9}{'dagster dev up (s)':>20}")
    for name, seconds, ratio, up in rows:
        print(f"{name:<18}{seconds:>9.1f}{ratio:>8.2f}x{'' if up is None else f'{up:>20.1f}'}")


if __name__ == "__main__":
    main()
