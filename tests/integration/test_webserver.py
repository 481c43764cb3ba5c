"""The real Dagster webserver on 127.0.0.1, driven through Dagster's GraphQL client.

It loads our ``workspace.yaml`` with a temporary DAGSTER_HOME (our dagster.yaml), the sample
data and a fresh warehouse database. The test launches a partitioned ``ingest_batch`` run the way
the UI does (the ``dagster/partition`` tag), waits for it, and reads the promotion asset's
materialisation metadata back over GraphQL.

Run coordinator: the instance gets ``DefaultRunCoordinator``, so the webserver launches the run at
once. Our dagster.yaml leaves Dagster's default ``QueuedRunCoordinator``, whose queue only the
daemon drains; the daemon would also start our sensors and schedule (default RUNNING), which this
test is not about. Pools still apply: they are enforced by the run's executor, not the queue.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

from assets.sources.sample_data import build_sample_data
from creatorlens.settings import REPO_ROOT, Settings
from orchestration.jobs import INGEST_JOB
from orchestration.runs import discover_batches, local_instance

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore:Using variable_values and operation_name:DeprecationWarning")]

LOCATION = "creatorlens"
BATCH = "batch-00001"
METADATA_QUERY = """
query Materializations($key: AssetKeyInput!, $partition: String!) {
  assetOrError(assetKey: $key) {
    __typename
    ... on Asset {
      assetMaterializations(partitions: [$partition], limit: 1) {
        runId
        partition
        metadataEntries {
          label
          ... on IntMetadataEntry { intValue }
          ... on FloatMetadataEntry { floatValue }
          ... on JsonMetadataEntry { jsonString }
          ... on TextMetadataEntry { text }
        }
      }
    }
  }
}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Resets SIGINT to its default, then becomes the command (same PID). A shell that starts pytest in
# the background leaves SIGINT ignored, children inherit that, and a Dagster process started so
# also ignores SIGTERM: it could then not be stopped by PID.
_DEFAULT_SIGINT_EXEC = "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])"


def _start(command: list[str], **popen_kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _DEFAULT_SIGINT_EXEC, *command], **popen_kwargs)


def _stop(proc: subprocess.Popen) -> None:
    """By PID: terminate, wait, then kill."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


@pytest.fixture
def webserver(tmp_path, database_url):
    settings = Settings(state_dir=tmp_path / "state", database_url=database_url, batch_size=4)
    build_sample_data(settings.sample_root)
    home = settings.resolved_dagster_home
    home.mkdir(parents=True)
    config = yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())
    config["run_coordinator"] = {"module": "dagster.core.run_coordinator", "class": "DefaultRunCoordinator"}
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    instance = local_instance(settings)
    assert BATCH in discover_batches(settings, instance).registered
    instance.dispose()

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CREATORLENS_", "DAGSTER_"))}
    env.update({
        "DAGSTER_HOME": str(home),
        "CREATORLENS_STATE_DIR": str(settings.state_dir),
        "DATABASE_URL": database_url,
        "BATCH_SIZE": "4",
        "CREATORLENS_IMAGE_WORKERS": "2",
        "CREATORLENS_DECODE_WORKERS": "1",
        "PYTHONPATH": str(REPO_ROOT),  # this checkout's code, whatever is installed
    })
    log = (tmp_path / "webserver.log").open("wb")
    webserver_bin = Path(sys.executable).with_name("dagster-webserver")
    proc = _start([str(webserver_bin), "-h", "127.0.0.1", "-p", str(port), "-w", "workspace.yaml"],
                  cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_until_up(proc, port, tmp_path / "webserver.log")
        yield settings, port, tmp_path / "webserver.log"
    finally:
        _stop(proc)
        log.close()


def _wait_until_up(proc: subprocess.Popen, port: int, log: Path, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise AssertionError("webserver did not come up:\n" + log.read_text()[-3000:])


def _submit(client: DagsterGraphQLClient, log: Path, timeout_s: float = 180) -> str:
    """Launch once the code location has loaded (the first requests may find it still loading)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return client.submit_job_execution(INGEST_JOB, repository_location_name=LOCATION,
                                               tags={"dagster/partition": BATCH})
        except DagsterGraphQLClientError as exc:
            if time.monotonic() > deadline:
                raise AssertionError(f"could not launch: {exc}\n{log.read_text()[-3000:]}") from exc
            time.sleep(1)


def test_launch_partitioned_run_and_read_metadata_over_graphql(webserver):
    settings, port, log = webserver
    client = DagsterGraphQLClient("127.0.0.1", port_number=port)
    run_id = _submit(client, log)

    deadline = time.monotonic() + 300
    status = None
    while time.monotonic() < deadline:
        status = client.get_run_status(run_id).value
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(1)
    assert status == "SUCCESS", log.read_text()[-4000:]

    response = httpx.post(f"http://127.0.0.1:{port}/graphql", timeout=30, json={
        "query": METADATA_QUERY,
        "variables": {"key": {"path": ["warehouse", "promoted_batch"]}, "partition": BATCH},
    })
    response.raise_for_status()
    asset = response.json()["data"]["assetOrError"]
    assert asset["__typename"] == "Asset"
    [materialization] = asset["assetMaterializations"]
    assert (materialization["runId"], materialization["partition"]) == (run_id, BATCH)
    meta = {e["label"]: e for e in materialization["metadataEntries"]}
    assert meta["rows_creators"]["intValue"] == 4
    assert meta["rows_images"]["intValue"] > 0
    assert meta["rows_per_second"]["floatValue"] > 0
    changed = json.loads(meta["rows_changed"]["jsonString"])
    assert changed["creators"] == 4
