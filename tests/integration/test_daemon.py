"""The daemon path for real: ``dagster dev`` (webserver + daemon) over our workspace.yaml.

One ``dagster dev`` per instance flavour, shared by the tests of this module (module scope):

* ``local``: our dagster.yaml (SQLite storage under a temporary DAGSTER_HOME, Dagster's default
  ``QueuedRunCoordinator``, tag limits, pools, run monitoring, run retries);
* ``prod``: deploy/dagster.prod.yaml with ``storage.postgres`` pointed at a database of its own on
  the test PostgreSQL server (through the file's own DAGSTER_PG_* variables, plus the server's
  unix socket as libpq's ``host`` parameter: the embedded server has no TCP listener) and the
  ``DockerRunLauncher`` replaced by the default run launcher (no Docker here). Everything else
  (coordinator, limits, pools, run monitoring, retries, the storage driver) is the file's.

The sources exist before ``dagster dev`` starts, so the new-creator sensor's first tick finds them
(its minimum interval is 60 s: no second tick is needed): a CSV export of three creators, a JSON
dump of each with two sample photos, and the dump of a fourth creator whose two images do not
exist. BATCH_SIZE=1, so batch-00001..3 are good and batch-00004 fails its blocking
``creator_images_quality`` check. Then:

1. the sensor registers the four partitions and requests a run each; the daemon dequeues them
   (RUN_ENQUEUED, then RUN_STARTING, in their event logs); the good ones end SUCCESS with a
   ``warehouse/promoted_batch`` materialisation (read over GraphQL) and their rows in
   ``creators``, ``images`` and ``promotions`` (read over SQL);
2. the monthly schedule is evaluated through the webserver (``scheduleDryRun``, the UI's "Test
   schedule") and its run requests launched as the UI's "Launch all" does (``launchMultipleRuns``,
   here with each request's asset selection and tags): the runs queue, carry
   ``creatorlens/reprocess=<month>``, and the daemon never has more of them in progress than the
   instance's limit on that tag (1 local, 2 prod; polled, and checked on the runs' start/end
   times), while at least one waits in the queue;
3. batch-00004's failed run and its automatic retry (``run_retries``) are written into
   ``batch_failures`` by ``batch_failure_sensor``; the warehouse holds nothing of that batch.

All the runs go on in the background while the tests wait, so the failure path overlaps with 1
and 2. ``dagster dev`` is stopped with SIGINT to its process group; whatever of that group (or
of its process tree) is still alive a minute later is SIGKILLed and fails the teardown.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
import pytest
import yaml
from psycopg import sql as pgsql

from assets.sources.sample_data import build_sample_data, write_creators_csv
from creatorlens.settings import REPO_ROOT, Settings
from orchestration.jobs import INGEST_JOB
from orchestration.schedules import REPROCESS_SCHEDULE, REPROCESS_TAG
from orchestration.sensors import NEW_CREATOR_SENSOR, TRIGGER_TAG
from resources import pgserver
from tests.conftest import TEMPLATE_DB

# One worker holds both `dagster dev` instances (module-scoped, one per instance kind): without the group,
# xdist would start them on both workers.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600), pytest.mark.xdist_group("daemon")]

LOCATION = "creatorlens"
REPOSITORY = "__repository__"
BATCH_SIZE = 1
# Creator → sample photos of its posts; one batch each, in source order (CSV rows first).
GOOD_CREATORS = {"daemon.astro": ["astronaut.jpg", "brick.jpg"], "daemon.coffee": ["coffee.jpg", "clock.jpg"],
                 "daemon.cat": ["chelsea.jpg", "grass.jpg"]}
GOOD_BATCHES = ["batch-00001", "batch-00002", "batch-00003"]
BAD_CREATOR = "zz.no.images"  # every image corrupt (bytes that decode to nothing): the blocking images check fails
BAD_BATCH = "batch-00004"
DONE = {"SUCCESS", "FAILURE", "CANCELED"}
IN_PROGRESS = {"STARTING", "STARTED", "CANCELING"}

RUNS_QUERY = """
query Runs($filter: RunsFilter) {
  runsOrError(filter: $filter) {
    __typename
    ... on Runs { results { runId status jobName creationTime startTime endTime tags { key value } } }
    ... on PythonError { message stack }
  }
}
"""
RUN_EVENTS_QUERY = """
query RunEvents($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { eventConnection(afterCursor: null) { events { __typename } } }
  }
}
"""
MATERIALIZATIONS_QUERY = """
query Materializations($key: AssetKeyInput!, $partition: String!) {
  assetOrError(assetKey: $key) {
    __typename
    ... on Asset {
      assetMaterializations(partitions: [$partition], limit: 1) {
        runId
        partition
        metadataEntries { label ... on IntMetadataEntry { intValue } }
      }
    }
  }
}
"""
PARTITIONS_QUERY = """
query Partitions($key: AssetKeyInput!) {
  assetNodeOrError(assetKey: $key) { __typename ... on AssetNode { partitionKeys } }
}
"""
SCHEDULE_DRY_RUN = """
mutation DryRun($selector: ScheduleSelector!, $timestamp: Float) {
  scheduleDryRun(selectorData: $selector, timestamp: $timestamp) {
    __typename
    ... on DryRunInstigationTick {
      evaluationResult {
        runRequests { runKey jobName runConfigYaml tags { key value } assetSelection { path } }
        skipReason
        error { message stack }
      }
    }
    ... on PythonError { message stack }
  }
}
"""
LAUNCH_MULTIPLE = """
mutation Launch($params: [ExecutionParams!]!) {
  launchMultipleRuns(executionParamsList: $params) {
    __typename
    ... on LaunchMultipleRunsResult {
      launchMultipleRunsResult {
        __typename
        ... on LaunchRunSuccess { run { runId status } }
        ... on Error { message }
      }
    }
    ... on PythonError { message stack }
  }
}
"""


# ---- processes ---------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Resets SIGINT to its default, then becomes the command (same PID): a shell that starts pytest in
# the background leaves SIGINT ignored, and dagster dev would inherit that (tests/integration/test_webserver.py).
_DEFAULT_SIGINT_EXEC = "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])"


def _session_members(sid: int) -> list[psutil.Process]:
    members = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getsid(proc.pid) == sid and _alive(proc):
                members.append(proc)
        except (OSError, psutil.Error):
            continue
    return members


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _describe(procs: list[psutil.Process]) -> str:
    lines = []
    for p in procs:
        try:
            lines.append(f"{p.pid}: {' '.join(p.cmdline())[:200]}")
        except psutil.Error:
            lines.append(f"{p.pid}: (gone)")
    return "\n".join(lines)


@dataclass
class DagsterDev:
    flavour: str
    port: int
    log: Path
    proc: subprocess.Popen
    database: str  # the warehouse database (psycopg URI)
    storage_database: str | None  # the Dagster storage database (prod), psycopg URI
    reprocess_limit: int
    max_retries: int

    def tail(self, chars: int = 6000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def graphql(self, query: str, **variables: Any) -> dict:
        response = httpx.post(f"http://127.0.0.1:{self.port}/graphql", timeout=60,
                              json={"query": query, "variables": variables})
        response.raise_for_status()
        body = response.json()
        assert "errors" not in body, f"{body['errors']}\n{self.tail()}"
        return body["data"]

    def runs(self, **tags: str) -> list[dict]:
        data = self.graphql(RUNS_QUERY, filter={"tags": [{"key": k, "value": v} for k, v in tags.items()]})
        runs = data["runsOrError"]
        assert runs["__typename"] == "Runs", runs
        for run in runs["results"]:
            run["tags"] = {t["key"]: t["value"] for t in run["tags"]}
        return runs["results"]

    def sql(self, query: str, *params: Any, database: str | None = None) -> list[tuple]:
        with psycopg.connect(database or self.database) as conn:
            return conn.execute(query, params).fetchall()

    def wait(self, what: str, check: Callable[[], Any], timeout_s: float) -> Any:
        """Poll ``check`` until it returns something truthy; fail with the dagster dev log's tail."""
        deadline = time.monotonic() + timeout_s
        last: Any = None
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"dagster dev exited ({self.proc.returncode}):\n{self.tail()}"
            last = check()
            if last:
                return last
            time.sleep(1)
        raise AssertionError(f"[{self.flavour}] timed out after {timeout_s:.0f}s waiting for {what} "
                             f"(last: {last!r})\n--- dagster dev log ---\n{self.tail()}")


def _wait_until_up(dev: DagsterDev, timeout_s: float = 180) -> None:
    def up() -> bool:
        try:  # the webserver answers, and the code location has loaded
            data = httpx.post(f"http://127.0.0.1:{dev.port}/graphql", timeout=5, json={
                "query": "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
                         "locationOrLoadError { __typename } } } } }"}).json()["data"]
        except (httpx.TransportError, ValueError, KeyError, TypeError):
            return False
        entries = data["workspaceOrError"].get("locationEntries") or []
        loaded = [e for e in entries if e["name"] == LOCATION and e["loadStatus"] == "LOADED"]
        if loaded:
            assert loaded[0]["locationOrLoadError"]["__typename"] == "RepositoryLocation", f"{loaded}\n{dev.tail()}"
        return bool(loaded)

    dev.wait("the webserver and the code location", up, timeout_s)


def _stop(dev: DagsterDev) -> None:
    """SIGINT to the process group; a minute later SIGKILL whatever is left, and fail if anything was."""
    pgid = dev.proc.pid  # start_new_session: pid == pgid == sid
    try:
        tree = [psutil.Process(dev.proc.pid), *psutil.Process(dev.proc.pid).children(recursive=True)]
    except psutil.Error:
        tree = []
    try:
        os.killpg(pgid, signal.SIGINT)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + 60
    left: list[psutil.Process] = []
    while time.monotonic() < deadline:
        dev.proc.poll()
        left = [p for p in {*tree, *_session_members(pgid)} if _alive(p)]
        if not left:
            break
        time.sleep(0.5)
    if left:
        listing = _describe(left)
        for proc in left:
            try:
                proc.kill()
            except psutil.Error:
                pass
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        dev.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass
    still = [p for p in {*tree, *_session_members(pgid)} if _alive(p)]
    assert not left, f"[{dev.flavour}] still running 60 s after SIGINT (SIGKILLed):\n{listing}\n{dev.tail(3000)}"
    assert not still, f"[{dev.flavour}] still running after SIGKILL:\n{_describe(still)}"


# ---- the sources, the databases, the instance --------------------------------------------------

def _dump(json_dir: Path, username: str, images: list[str]) -> None:
    """A ``web_profile_info`` dump of ``username`` with one post per image path."""
    edges = [{"node": {"id": f"{zlib.crc32(username.encode())}{i:03d}", "shortcode": f"{username[:6]}{i:05d}",
                       "display_url": image, "is_video": False, "taken_at_timestamp": 1714564800 - i * 3600,
                       "edge_liked_by": {"count": 100 + i}, "edge_media_to_comment": {"count": i},
                       "edge_media_to_caption": {"edges": [{"node": {"text": f"post {i} #daemon"}}]}}}
             for i, image in enumerate(images)]
    doc = {"data": {"user": {"id": str(zlib.crc32(username.encode())), "username": username,
                             "full_name": username.replace(".", " ").title(), "biography": "daemon test",
                             "edge_followed_by": {"count": 1234},
                             "edge_owner_to_timeline_media": {"count": len(images), "edges": edges}}}, "status": "ok"}
    (json_dir / f"web_profile_info({username})_2024-05-01.json").write_text(json.dumps(doc))


def _write_sources(root: Path) -> tuple[Path, Path]:
    """Three creators (CSV rows, their posts in JSON dumps) with two sample photos each, and one
    creator (a dump only) whose two posts point at files that are not images. (Missing or expired
    images no longer block a batch; images whose bytes we got and could not decode still do.)"""
    sample = build_sample_data(root / "sample")  # for its photos only
    csv_dir, json_dir = root / "csv", root / "json"
    json_dir.mkdir(parents=True)
    write_creators_csv(csv_dir / "export.csv", list(GOOD_CREATORS))
    for username, photos in GOOD_CREATORS.items():
        _dump(json_dir, username, [str(sample.image_dir / p) for p in photos])
    corrupt = [root / f"{BAD_CREATOR}_{i}.jpg" for i in range(2)]
    for path in corrupt:
        path.write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG " * 8)
    _dump(json_dir, BAD_CREATOR, [str(p) for p in corrupt])
    return csv_dir, json_dir


def _create_database(pg_server, name: str, template: str | None) -> str:
    with psycopg.connect(pg_server.get_uri(), autocommit=True) as conn:
        conn.execute(pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(pgsql.Identifier(name)))
        if template:
            conn.execute(pgsql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                pgsql.Identifier(name), pgsql.Identifier(template)))
        else:
            conn.execute(pgsql.SQL("CREATE DATABASE {}").format(pgsql.Identifier(name)))
    return pg_server.get_uri(database=name)


def _drop_database(pg_server, name: str) -> None:
    with psycopg.connect(pg_server.get_uri(), autocommit=True) as conn:
        conn.execute(pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(pgsql.Identifier(name)))


def _instance_config(flavour: str, socket_dir: Path) -> dict:
    if flavour == "local":
        return yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())
    config = yaml.safe_load((REPO_ROOT / "deploy" / "dagster.prod.yaml").read_text())
    db = config["storage"]["postgres"]["postgres_db"]
    # The env-var names stay the production file's; the embedded server listens on a unix socket
    # only, which libpq takes as the `host` connection parameter (it wins over the hostname).
    db["params"] = {**(db.get("params") or {}), "host": str(socket_dir)}
    config["run_launcher"] = {"module": "dagster.core.launcher", "class": "DefaultRunLauncher"}
    return config


@pytest.fixture(scope="module", params=["local", "prod"])
def dagster_dev(request, pg_server, tmp_path_factory) -> Iterator[DagsterDev]:
    flavour = request.param
    tmp = tmp_path_factory.mktemp(f"daemon-{flavour}")
    warehouse_db = f"daemon_{flavour}_{os.getpid()}"
    storage_db = f"dagster_{flavour}_{os.getpid()}"
    database = _create_database(pg_server, warehouse_db, TEMPLATE_DB)
    csv_dir, json_dir = _write_sources(tmp / "sources")
    settings = Settings(state_dir=tmp / "state", database_url=database, batch_size=BATCH_SIZE)

    socket_dir = pgserver.status(Path(pg_server.pgdata)).socket_dir
    config = _instance_config(flavour, Path(socket_dir))
    home = settings.resolved_dagster_home
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))

    env = {k: v for k, v in os.environ.items() if not k.startswith(("CREATORLENS_", "DAGSTER_"))}
    env.update({
        "DAGSTER_HOME": str(home),
        "CREATORLENS_STATE_DIR": str(settings.state_dir),
        "DATABASE_URL": database,
        "CREATORLENS_CSV_DIR": str(csv_dir),
        "CREATORLENS_JSON_DIR": str(json_dir),
        "BATCH_SIZE": str(BATCH_SIZE),
        "CREATORLENS_IMAGE_WORKERS": "2",
        "CREATORLENS_DECODE_WORKERS": "1",
        "PYTHONPATH": str(REPO_ROOT),  # this checkout's code, whatever is installed
    })
    if flavour == "prod":
        _create_database(pg_server, storage_db, None)
        env.update({"DAGSTER_PG_HOST": "localhost", "DAGSTER_PG_USER": "postgres", "DAGSTER_PG_PASSWORD": "",
                    "DAGSTER_PG_DB": storage_db})

    limits = {e["key"]: e["limit"] for e in config["concurrency"]["runs"]["tag_concurrency_limits"]}
    retries = config.get("run_retries") or {}
    port = _free_port()
    log_path = tmp / "dagster-dev.log"
    log = log_path.open("wb")
    dagster_bin = Path(sys.executable).with_name("dagster")
    proc = subprocess.Popen(
        [sys.executable, "-c", _DEFAULT_SIGINT_EXEC, str(dagster_bin), "dev", "-w", "workspace.yaml",
         "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    dev = DagsterDev(flavour, port, log_path, proc, database,
                     pg_server.get_uri(database=storage_db) if flavour == "prod" else None,
                     limits[REPROCESS_TAG], retries.get("max_retries", 0) if retries.get("enabled") else 0)
    try:
        _wait_until_up(dev)
        yield dev
    finally:
        try:
            _stop(dev)
        finally:
            log.close()
            _drop_database(pg_server, warehouse_db)
            if flavour == "prod":
                _drop_database(pg_server, storage_db)


# ---- helpers over GraphQL ----------------------------------------------------------------------

def _first_attempts(runs: list[dict]) -> list[dict]:
    return [r for r in runs if "dagster/retry_number" not in r["tags"]]


def _sensor_runs(dev: DagsterDev) -> dict[str, dict]:
    """Partition → the new-creator sensor's run of it (retries left out)."""
    runs = _first_attempts(dev.runs(**{TRIGGER_TAG: NEW_CREATOR_SENSOR}))
    return {r["tags"]["dagster/partition"]: r for r in runs}


def _wait_for_sensor_runs(dev: DagsterDev) -> dict[str, dict]:
    def done() -> dict[str, dict] | None:
        runs = _sensor_runs(dev)
        if set(runs) == {*GOOD_BATCHES, BAD_BATCH} and all(r["status"] in DONE for r in runs.values()):
            return runs
        return None

    # The first tick comes at once (the sources already exist); runs take ~5-15 s each, 4 at once.
    return dev.wait("the new-creator sensor's four runs to finish", done, timeout_s=300)


def _event_types(dev: DagsterDev, run_id: str) -> set[str]:
    run = dev.graphql(RUN_EVENTS_QUERY, runId=run_id)["runOrError"]
    assert run["__typename"] == "Run", run
    return {e["__typename"] for e in run["eventConnection"]["events"]}


# ---- 1. new creators → sensor → queued runs → promoted batches --------------------------------

def test_new_creators_become_promoted_batches_through_the_daemon(dagster_dev):
    dev = dagster_dev
    runs = _wait_for_sensor_runs(dev)
    statuses = {k: r["status"] for k, r in runs.items()}
    assert statuses == {**dict.fromkeys(GOOD_BATCHES, "SUCCESS"), BAD_BATCH: "FAILURE"}, dev.tail()

    # The sensor cut the batches as planned and registered them as partitions of the job's assets.
    members = dict(dev.sql("SELECT batch_key, array_agg(username ORDER BY username) FROM creator_batches GROUP BY 1"))
    assert sorted(members) == [*GOOD_BATCHES, BAD_BATCH]
    assert members == {**{b: [u] for b, u in zip(GOOD_BATCHES, GOOD_CREATORS, strict=True)}, BAD_BATCH: [BAD_CREATOR]}
    if dev.storage_database:  # the prod instance really keeps its runs in PostgreSQL
        stored = {r for (r,) in dev.sql("SELECT run_id FROM runs", database=dev.storage_database)}
        assert {r["runId"] for r in runs.values()} <= stored
    node = dev.graphql(PARTITIONS_QUERY, key={"path": ["warehouse", "promoted_batch"]})["assetNodeOrError"]
    assert node["__typename"] == "AssetNode" and set(node["partitionKeys"]) == {*GOOD_BATCHES, BAD_BATCH}

    for batch in GOOD_BATCHES:
        run = runs[batch]
        assert run["jobName"] == INGEST_JOB
        assert run["tags"]["dagster/sensor_name"] == NEW_CREATOR_SENSOR
        assert run["tags"]["dagster/run_key"] == f"{INGEST_JOB}:{batch}"
        # Queued by the QueuedRunCoordinator and launched by the daemon's run-queue loop.
        events = _event_types(dev, run["runId"])
        assert {"RunEnqueuedEvent", "RunStartingEvent", "RunStartEvent", "RunSuccessEvent"} <= events, events

        asset = dev.graphql(MATERIALIZATIONS_QUERY, key={"path": ["warehouse", "promoted_batch"]},
                            partition=batch)["assetOrError"]
        assert asset["__typename"] == "Asset", asset
        [materialization] = asset["assetMaterializations"]
        assert (materialization["runId"], materialization["partition"]) == (run["runId"], batch)
        meta = {e["label"]: e.get("intValue") for e in materialization["metadataEntries"]}
        assert meta["rows_creators"] == BATCH_SIZE

        [(creators,)] = dev.sql("SELECT count(*) FROM creators WHERE batch_key = %s", batch)
        [(images, ok)] = dev.sql("SELECT count(*), count(*) FILTER (WHERE status = 'ok') FROM images WHERE batch_key = %s",
                                 batch)
        promotions = dev.sql("SELECT run_id FROM promotions WHERE batch_key = %s", batch)
        assert creators == BATCH_SIZE, batch
        assert images == ok == 2, batch
        assert promotions == [(run["runId"],)], batch


# ---- 2. the monthly schedule's tick, throttled by creatorlens/reprocess -----------------------

def _next_tick(now: datetime) -> datetime:
    year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
    return datetime(year, month, 1, 3, 0, tzinfo=UTC)


def test_monthly_schedule_tick_queues_runs_within_the_tag_limit(dagster_dev):
    dev = dagster_dev
    assert {k: r["status"] for k, r in _wait_for_sensor_runs(dev).items() if k in GOOD_BATCHES} == \
        dict.fromkeys(GOOD_BATCHES, "SUCCESS")
    when = _next_tick(datetime.now(UTC))
    month = when.strftime("%Y-%m")

    # "Test schedule" in the UI: the webserver has the code location evaluate the tick.
    selector = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "scheduleName": REPROCESS_SCHEDULE}
    dry = dev.graphql(SCHEDULE_DRY_RUN, selector=selector, timestamp=when.timestamp())["scheduleDryRun"]
    assert dry["__typename"] == "DryRunInstigationTick", dry
    evaluation = dry["evaluationResult"]
    assert evaluation["error"] is None, evaluation["error"]
    requests = evaluation["runRequests"]
    assert [r["runKey"] for r in requests] == [f"reprocess:{month}:{b}" for b in GOOD_BATCHES], evaluation
    for request, batch in zip(requests, GOOD_BATCHES, strict=True):
        tags = {t["key"]: t["value"] for t in request["tags"]}
        assert tags[REPROCESS_TAG] == month and tags["dagster/partition"] == batch
        assert request["assetSelection"], request  # vision and tagging, not the whole job

    # "Launch all": each request as a run of its job, its asset selection and tags (and the
    # schedule's name, as the schedule daemon tags its runs), submitted to the run queue.
    params = [{
        "selector": {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY,
                     "jobName": request["jobName"] or INGEST_JOB, "assetSelection": request["assetSelection"]},
        "runConfigData": request["runConfigYaml"],
        "mode": "default",
        "executionMetadata": {"tags": [*request["tags"], {"key": "dagster/schedule_name", "value": REPROCESS_SCHEDULE}]},
    } for request in requests]
    launched = dev.graphql(LAUNCH_MULTIPLE, params=params)["launchMultipleRuns"]
    assert launched["__typename"] == "LaunchMultipleRunsResult", launched
    results = launched["launchMultipleRunsResult"]
    assert all(r["__typename"] == "LaunchRunSuccess" for r in results), results
    run_ids = {r["run"]["runId"] for r in results}
    assert len(run_ids) == len(GOOD_BATCHES) > dev.reprocess_limit  # more runs than the limit lets through

    # Poll: never more of them in progress than the limit; at least once one waited in the queue.
    peak, held_back = 0, False
    observed: list[dict] = []

    def finished() -> bool:
        nonlocal peak, held_back, observed
        observed = [r for r in dev.runs(**{REPROCESS_TAG: month}) if r["runId"] in run_ids]
        running = sum(r["status"] in IN_PROGRESS for r in observed)
        queued = sum(r["status"] == "QUEUED" for r in observed)
        peak = max(peak, running)
        held_back |= queued > 0 and running > 0
        assert running <= dev.reprocess_limit, f"{running} reprocess runs in progress:\n{observed}\n{dev.tail()}"
        return len(observed) == len(run_ids) and all(r["status"] in DONE for r in observed)

    deadline = time.monotonic() + 300
    while not finished():
        assert time.monotonic() < deadline, f"reprocess runs did not finish: {observed}\n{dev.tail()}"
        assert dev.proc.poll() is None, dev.tail()
        time.sleep(0.3)

    assert {r["status"] for r in observed} == {"SUCCESS"}, f"{observed}\n{dev.tail()}"
    assert {r["tags"]["dagster/partition"] for r in observed} == set(GOOD_BATCHES)
    assert all(r["tags"][REPROCESS_TAG] == month for r in observed)
    assert peak >= 1 and held_back, f"no run was seen waiting in the queue: peak {peak}\n{observed}"
    for run in observed:
        events = _event_types(dev, run["runId"])
        assert {"RunEnqueuedEvent", "RunStartingEvent"} <= events, events
    # The same on the runs' own clocks: at no instant more than the limit between start and end.
    edges = sorted([(r["startTime"], 1) for r in observed] + [(r["endTime"], -1) for r in observed],
                   key=lambda e: (e[0], e[1]))
    level = max_level = 0
    for _, step in edges:
        level += step
        max_level = max(max_level, level)
    assert max_level <= dev.reprocess_limit, observed


# ---- 3. a failed run lands in batch_failures ---------------------------------------------------

def test_failed_batch_is_recorded_by_the_failure_sensor(dagster_dev):
    dev = dagster_dev
    assert _wait_for_sensor_runs(dev)[BAD_BATCH]["status"] == "FAILURE"
    attempts = 1 + dev.max_retries  # run_retries re-executes a failed run max_retries times

    def recorded() -> list[tuple] | None:
        runs = dev.runs(**{"dagster/partition": BAD_BATCH})
        if len(runs) < attempts or any(r["status"] not in DONE for r in runs):
            return None
        rows = dev.sql("SELECT run_id, batch_key, job_name, failed_steps, error_class, error FROM batch_failures")
        if {r[0] for r in rows} != {r["runId"] for r in runs}:
            return None
        return rows

    # Run-failure sensors tick every 30 s; the retry goes through the queue once more.
    rows = dev.wait(f"batch_failures rows for {attempts} failed runs of {BAD_BATCH}", recorded, timeout_s=240)
    runs = dev.runs(**{"dagster/partition": BAD_BATCH})
    assert [r["status"] for r in runs] == ["FAILURE"] * attempts, runs
    assert len(rows) == attempts
    for run_id, batch_key, job_name, failed_steps, error_class, error in rows:
        assert (batch_key, job_name) == (BAD_BATCH, INGEST_JOB)
        assert failed_steps, run_id
        assert error_class == "DagsterAssetCheckFailedError", error
        assert "creator_images_quality" in error
    # The blocking check kept the batch out of the warehouse.
    for table in ("creators", "images", "promotions"):
        [(n,)] = dev.sql(f"SELECT count(*) FROM {table} WHERE batch_key = %s", BAD_BATCH)
        assert n == 0, table
