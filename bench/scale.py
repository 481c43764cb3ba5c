"""Scale, measured: 50,000 creators (500 batches of 100) through discovery, partitions, the UI's
GraphQL, the monthly schedule and a real backfill through the daemon, on this machine.

The sources are a CSV export plus a folder of JSON dumps, one per creator, for the creators of
the backfill batches (0-2 tiny local JPEGs each, so nothing touches the network); the warehouse is
a temporary embedded PostgreSQL (``resources.pgserver``) and the instance a temporary local
Dagster instance with our dagster.yaml (SQLite storage, ``max_concurrent_runs`` 4, 2 runs per
backfill). Measured, each against a baseline measured in the same run:

* batch assignment of all N creators: ``batch_new_creators`` (read the sources, record rejects,
  assign, stamp) and ``assign_batches`` alone (the warehouse part), each on an empty warehouse;
* ``new_creator_sensor`` ticks, evaluated as bench/sensor_tick.py does (``build_sensor_context``
  with the Definitions' own resources): one finding all N creators, one finding 1,000 new among N
  already batched *and promoted* (the warehouse's ``creators`` table is filled with the N batched
  creators first, as after a full backfill), one that lost its cursor and finds nothing new; the
  baseline is an idle tick (cursor matches, median of 5);
* ``register_batches`` of the N / 100 batch keys;
* the ``monthly_reprocess`` schedule's evaluation (``evaluate_tick``, what the daemon runs) and its
  ``reprocess_plan`` over the promoted batches, recorded cheaply with
  ``report_runless_asset_event``: ``warehouse/promoted_batch`` and ``warehouse/promoted_profiles`` at
  today's code version, ``warehouse/vision`` at an old one (a code upgrade: every batch re-runs
  vision too, the planner's expensive branch);

  the scale rows are measured again at a tenth of the size (N / 10 creators, in their own
  warehouse and instance) and the table gives the growth exponent between the two
  (``log(t / t_small) / log(10)``: 1.0 is linear, 2.0 quadratic; below ~0.8 a fixed cost still
  dominates the small size);
* GraphQL of a ``dagster-webserver`` on 127.0.0.1 against the instance: the partition keys of
  ``warehouse/promoted_batch``, its partition status (what the asset's Partitions tab asks), the
  ``ingest_batch`` job's partition list and per-partition run status; baseline: ``{ version }``,
  the webserver's round trip (median of 3 after a warm-up each);
* the size of DAGSTER_HOME on disk after all that, and again after the backfill;
* a real backfill of ``--backfill-batches`` batches (default 20) launched over GraphQL
  (``launchPartitionBackfill`` on the job's partition set, as the UI does; ``--submit runs``
  submits one run per batch instead, as the new-creator sensor does) and executed by a
  ``dagster-daemon run`` next to the webserver: runs per hour, and per run the queue wait,
  the launch (worker process start and code load, RUN_STARTING → RUN_START), the run body
  (RUN_START → end) and how much of the body the steps' own durations (event log) account for.

    python bench/scale.py                                   # 50,000 creators, 20-batch backfill
    python bench/scale.py --creators 5000 --backfill-batches 4
    python bench/scale.py --backfill-batches 0 --profile /tmp/prof   # cProfile each in-process step
"""

from __future__ import annotations

import argparse
import cProfile
import json
import logging
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import numpy as np
import psycopg
from PIL import Image
from psycopg import sql as pgsql

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assets.common.keys import PROMOTED_BATCH
from assets.common.partitions import CREATOR_BATCHES, register_batches
from assets.sources.assets import load_snapshot
from assets.sources.batching import assign_batches
from assets.sources.sample_data import write_creators_csv
from creatorlens.settings import REPO_ROOT, Settings
from orchestration.definitions import build_definitions
from orchestration.jobs import INGEST_JOB
from orchestration.runs import batch_new_creators
from orchestration.schedules import CODE_VERSION_TAG, REPROCESS_SCHEDULE, reprocess_plan
from orchestration.sensors import NEW_CREATOR_SENSOR
from resources import pgserver
from resources.sources import SourceFiles
from resources.warehouse import dispose_engines, get_engine

BIN = Path(sys.executable).parent
TEMPLATE_DB = "bench_scale_template"
NEW_IN_STEADY_STATE = 1000
VISION_PROMOTION = dg.AssetKey(["warehouse", "vision"])
PROFILES_PROMOTION = dg.AssetKey(["warehouse", "promoted_profiles"])
OLD_CODE_VERSION = "0.0.0-bench-old"
WHEN = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
LOCATION, REPOSITORY = "creatorlens", "__repository__"
PARTITION_SET = f"{INGEST_JOB}_partition_set"


# ---- measuring ---------------------------------------------------------------------------------

@dataclass
class Row:
    section: str
    name: str
    n: int | None  # items (creators, batches, events) the measurement handled
    seconds: float
    baseline: str | None = None
    baseline_s: float | None = None
    small_s: float | None = None  # the same at a tenth of the size (growth exponent)


@dataclass
class Bench:
    profile_dir: Path | None
    rows: list[Row] = field(default_factory=list)

    def time(self, name: str, fn: Callable[[], Any]) -> tuple[float, Any]:
        """(seconds, result) of ``fn()``; with --profile, also a cProfile dump named ``name``."""
        profiler = cProfile.Profile() if self.profile_dir else None
        started = time.perf_counter()
        if profiler:
            profiler.enable()
        try:
            result = fn()
        finally:
            if profiler:
                profiler.disable()
        seconds = time.perf_counter() - started
        if profiler:
            self.profile_dir.mkdir(parents=True, exist_ok=True)
            profiler.dump_stats(str(self.profile_dir / f"{name}.prof"))
        return seconds, result


# ---- sources, warehouse, instance --------------------------------------------------------------

@dataclass(frozen=True)
class World:
    """Source folders, warehouse database and Dagster home of one size."""

    root: Path
    csv_dir: Path
    json_dir: Path
    image_creators: list[str]
    n_creators: int
    url: str
    home: Path

    def settings(self, batch_size: int) -> Settings:
        return Settings(state_dir=self.root / "state", database_url=self.url, csv_dir=self.csv_dir,
                        json_dir=self.json_dir, batch_size=batch_size, dagster_home=self.home)


def _tiny_jpeg(path: Path, rng: np.random.Generator) -> None:
    """64 x 64 noise: decodes, hashes and passes the vision size floor; no two alike."""
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path, quality=80)


def write_sources(root: Path, n_csv: int, n_json: int, *, images: bool, seed: int = 0) -> tuple[Path, Path, list[str]]:
    """A CSV export of ``n_csv`` creators and ``n_json`` JSON dumps whose creators have 0-2 posts with a local image."""
    csv_dir, json_dir, image_dir = root / "csv", root / "json", root / "images"
    json_dir.mkdir(parents=True)
    image_dir.mkdir()
    write_creators_csv(csv_dir / "export.csv", [f"csv.creator{i:06d}" for i in range(n_csv)])
    rng = np.random.default_rng(seed)
    names = []
    for i in range(n_json):
        name = f"img.creator{i:05d}"
        names.append(name)
        edges = []
        for j in range(i % 3):
            image = f"{name}_{j}.jpg"
            if images:
                _tiny_jpeg(image_dir / image, rng)
            edges.append({"node": {
                "id": str(3_300_000_000_000_000_000 + i * 10 + j), "shortcode": f"B{i:07d}x{j}",
                "display_url": f"../images/{image}", "is_video": False, "taken_at_timestamp": 1_714_560_000 - 3600 * j,
                "edge_liked_by": {"count": 10 + j}, "edge_media_to_comment": {"count": j},
                "edge_media_to_caption": {"edges": [{"node": {"text": f"post {j} #bench"}}]}}})
        doc = {"data": {"user": {"username": name, "full_name": name.replace(".", " ").title(), "biography": "bench",
                                 "edge_followed_by": {"count": 1000 + i},
                                 "edge_owner_to_timeline_media": {"count": len(edges), "edges": edges}}}}
        (json_dir / f"web_profile_info({name})_1.json").write_text(json.dumps(doc))
    return csv_dir, json_dir, names


class Warehouse:
    """Databases cloned from one migrated template on the embedded server."""

    def __init__(self, pgdata: Path):
        self.pgdata = pgdata
        self._create(TEMPLATE_DB)
        get_engine(pgserver.url(pgdata, TEMPLATE_DB))  # migrates
        dispose_engines()  # a template must have no open connections

    def _create(self, name: str, template: str | None = None) -> None:
        with psycopg.connect(pgserver.admin_url(self.pgdata), autocommit=True) as conn:
            query = "CREATE DATABASE {}" + (" TEMPLATE {}" if template else "")
            conn.execute(pgsql.SQL(query).format(*map(pgsql.Identifier, filter(None, (name, template)))))

    def fresh(self, name: str) -> str:
        """URL of a new, migrated, empty database ``name``; its engine is made (untimed, as a code server keeps it)."""
        self._create(name, TEMPLATE_DB)
        url = pgserver.url(self.pgdata, name)
        get_engine(url)
        return url


def dagster_home(path: Path) -> Path:
    path.mkdir(parents=True)
    shutil.copyfile(REPO_ROOT / "dagster.yaml", path / "dagster.yaml")
    return path


def storage(home: Path) -> dict[str, tuple[int, int]]:
    """(bytes, files) of a SQLite DAGSTER_HOME, by what they hold (WAL and journal files included)."""
    parts: dict[str, tuple[int, int]] = {}
    for path in home.rglob("*"):
        if not path.is_file():
            continue
        rel = path.relative_to(home).as_posix()
        if rel.startswith("history/runs/index.db"):
            part = "event index (history/runs/index.db)"
        elif rel.startswith("history/runs/.db"):
            part = "runless events (history/runs/.db)"
        elif rel.startswith("history/runs/"):
            part = "per-run event logs (history/runs/<run>.db)"
        elif rel.startswith("history/runs.db"):
            part = "runs (history/runs.db)"
        elif rel.startswith("storage/"):
            part = "compute logs (storage/)"
        elif rel.startswith("schedules/"):
            part = "ticks, cursors (schedules/)"
        else:
            part = "other"
        size, files = parts.get(part, (0, 0))
        parts[part] = (size + path.stat().st_size, files + 1)
    return parts


def _total(parts: dict[str, tuple[int, int]]) -> tuple[int, int]:
    return sum(b for b, _ in parts.values()), sum(f for _, f in parts.values())


# ---- in-process measurements ---------------------------------------------------------------------

def tick(defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None):
    sensor = defs.resolve_sensor_def(NEW_CREATOR_SENSOR)
    context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs, resources=defs.resources,
                                      sensor_name=NEW_CREATOR_SENSOR)
    return sensor(context)


def measure_assignment(bench: Bench, wh: Warehouse, world: World, tag: str, batch_size: int) -> tuple[float, float]:
    settings = world.settings(batch_size)
    sources = SourceFiles.from_settings(settings)
    engine = get_engine(wh.fresh(f"bench_assign_{tag}"))
    full_s, (_, assignment) = bench.time(f"batch_new_creators_{tag}", lambda: batch_new_creators(engine, sources, batch_size))
    assert assignment.new_creators == world.n_creators, assignment.new_creators
    usernames = list(load_snapshot(sources).creators)
    engine = get_engine(wh.fresh(f"bench_assign_only_{tag}"))
    assign_s, _ = bench.time(f"assign_batches_{tag}", lambda: assign_batches(engine, usernames, batch_size=batch_size))
    return full_s, assign_s


def record_promotions(instance: dg.DagsterInstance, graph, batches: list[str]) -> int:
    """Every batch promoted: runless materialisations with the code versions they 'ran' with."""
    versions = {PROMOTED_BATCH: graph.get(PROMOTED_BATCH).code_version,
                PROFILES_PROMOTION: graph.get(PROFILES_PROMOTION).code_version,
                VISION_PROMOTION: OLD_CODE_VERSION}
    for batch in batches:
        for key, version in versions.items():
            instance.report_runless_asset_event(
                dg.AssetMaterialization(key, partition=batch, tags={CODE_VERSION_TAG: version} if version else None))
    return len(batches) * len(versions)


def measure_schedule(bench: Bench, defs: dg.Definitions, instance: dg.DagsterInstance, tag: str) -> tuple[float, float, int]:
    """(evaluate_tick seconds, reprocess_plan seconds, run requests) over the instance's promoted batches."""
    schedule = defs.resolve_schedule_def(REPROCESS_SCHEDULE)
    repo = defs.get_repository_def()
    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=WHEN, repository_def=repo)
    tick_s, result = bench.time(f"schedule_tick_{tag}", lambda: schedule.evaluate_tick(context))
    batches = sorted(instance.get_materialized_partitions(PROMOTED_BATCH))
    plan_s, plan = bench.time(f"reprocess_plan_{tag}", lambda: reprocess_plan(instance, repo.asset_graph, batches))
    assert len(plan) == len(batches) == len(result.run_requests), (len(plan), len(batches), len(result.run_requests))
    assert all(VISION_PROMOTION in keys for keys in plan.values())
    return tick_s, plan_s, len(result.run_requests)


def small_world(bench: Bench, wh: Warehouse, world: World, batch_size: int) -> dict[str, float]:
    """The scale rows at this world's size: assignment, a tick finding everything, registration, schedule."""
    out: dict[str, float] = {}
    out["batch_new_creators"], out["assign_batches"] = measure_assignment(bench, wh, world, "small", batch_size)
    defs = build_definitions(world.settings(batch_size))
    defs.resources["warehouse"].get_engine()
    with dg.DagsterInstance.from_config(str(world.home)) as instance:
        out["tick_all"], result = bench.time("tick_all_small", lambda: tick(defs, instance, None))
        keys = list(result.dynamic_partitions_requests[0].partition_keys)
        out["register"], _ = bench.time("register_small", lambda: register_batches(instance, keys))
        out["record"], _ = bench.time("record_small", lambda: record_promotions(instance, defs.resolve_asset_graph(), keys))
        out["schedule_tick"], out["reprocess_plan"], _ = measure_schedule(bench, defs, instance, "small")
    return out


# ---- webserver and daemon -------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(world: World, batch_size: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CREATORLENS_", "DAGSTER_")) and k not in ("DATABASE_URL", "BATCH_SIZE")}
    env.update({"CREATORLENS_STATE_DIR": str(world.root / "state"), "DAGSTER_HOME": str(world.home),
                "DATABASE_URL": world.url, "BATCH_SIZE": str(batch_size), "CREATORLENS_CSV_DIR": str(world.csv_dir),
                "CREATORLENS_JSON_DIR": str(world.json_dir), "PYTHONPATH": str(REPO_ROOT)})
    return env


class Process:
    def __init__(self, args: list[str], env: dict[str, str], log: Path):
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(args, env=env, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


class GraphQL:
    def __init__(self, port: int):
        self.url = f"http://127.0.0.1:{port}/graphql"
        self.client = httpx.Client(timeout=300)

    def __call__(self, query: str, **variables: Any) -> dict:
        answer = self.client.post(self.url, json={"query": query, "variables": variables})
        answer.raise_for_status()
        body = answer.json()
        if body.get("errors"):
            raise RuntimeError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    def wait_until_loaded(self, proc: Process, timeout_s: float = 300) -> float:
        started, deadline = time.perf_counter(), time.monotonic() + timeout_s
        query = """query { workspaceOrError { ... on Workspace { locationEntries { name
                   locationOrLoadError { __typename ... on PythonError { message } } } } } }"""
        while True:
            try:
                entries = self(query)["workspaceOrError"]["locationEntries"]
                state = [e["locationOrLoadError"] for e in entries]
                if state and all(s and s["__typename"] == "RepositoryLocation" for s in state):
                    return time.perf_counter() - started
                if any(s and s["__typename"] == "PythonError" for s in state):
                    raise RuntimeError(f"code location failed to load: {state}")
            except (httpx.TransportError, httpx.HTTPStatusError):
                pass
            if proc.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"webserver did not come up: {proc.log.read_text()[-3000:]}")
            time.sleep(0.5)

    def timed(self, query: str, repeats: int = 3, **variables: Any) -> tuple[float, dict]:
        data = self(query, **variables)  # warm-up: caches, code location snapshot
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            data = self(query, **variables)
            times.append(time.perf_counter() - started)
        return statistics.median(times), data


REPO_SELECTOR = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY}
ASSET_KEY = {"path": PROMOTED_BATCH.path}
Q_VERSION = "query { version }"
Q_KEYS = """query($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) { ... on AssetNode { partitionKeys } } }"""
Q_STATUS = """query($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) { ... on AssetNode {
  partitionStats { numMaterialized numPartitions numFailed numMaterializing }
  assetPartitionStatuses { __typename ... on DefaultPartitionStatuses {
    materializedPartitions failedPartitions unmaterializedPartitions materializingPartitions } } } } }"""
Q_JOB_PARTITIONS = """query($repo: RepositorySelector!, $name: String!) {
  partitionSetOrError(repositorySelector: $repo, partitionSetName: $name) { __typename ... on PartitionSet {
    partitionsOrError { ... on Partitions { results { name } } } } } }"""
Q_JOB_STATUSES = """query($repo: RepositorySelector!, $name: String!) {
  partitionSetOrError(repositorySelector: $repo, partitionSetName: $name) { __typename ... on PartitionSet {
    partitionStatusesOrError { __typename ... on PartitionStatuses { results { partitionName runStatus } } } } } }"""
M_BACKFILL = """mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }"""
M_RUN = """mutation($params: ExecutionParams!) { launchPipelineExecution(executionParams: $params) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }"""


def measure_graphql(bench: Bench, gql: GraphQL, n_partitions: int) -> None:
    version_s, _ = gql.timed(Q_VERSION)
    base = ("{ version }", version_s)
    keys_s, data = gql.timed(Q_KEYS, key=ASSET_KEY)
    assert len(data["assetNodeOrError"]["partitionKeys"]) == n_partitions, data
    status_s, data = gql.timed(Q_STATUS, key=ASSET_KEY)
    stats = data["assetNodeOrError"]["partitionStats"]
    parts_s, data = gql.timed(Q_JOB_PARTITIONS, repo=REPO_SELECTOR, name=PARTITION_SET)
    assert data["partitionSetOrError"]["__typename"] == "PartitionSet", data
    statuses_s, data = gql.timed(Q_JOB_STATUSES, repo=REPO_SELECTOR, name=PARTITION_SET)
    section = "GraphQL (dagster-webserver, median of 3)"
    bench.rows += [
        Row(section, f"{PROMOTED_BATCH.to_user_string()}: partition keys", n_partitions, keys_s, *base),
        Row(section, f"{PROMOTED_BATCH.to_user_string()}: partition status ({stats['numMaterialized']} materialised)",
            n_partitions, status_s, *base),
        Row(section, f"{INGEST_JOB} job: partition list", n_partitions, parts_s, *base),
        Row(section, f"{INGEST_JOB} job: run status per partition", n_partitions, statuses_s, *base),
        Row(section, "{ version } (round trip)", None, version_s, *base),
    ]


@dataclass(frozen=True)
class RunTimes:
    run_id: str
    partition: str
    status: str
    created: float
    launched: float | None
    started: float | None
    ended: float | None
    steps_s: float
    n_steps: int
    step_s: dict[str, float]


def run_times(instance: dg.DagsterInstance, record) -> RunTimes:
    run = record.dagster_run
    starting = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.RUN_STARTING).records
    stats = instance.get_run_step_stats(run.run_id)
    steps = {s.step_key: s.end_time - s.start_time for s in stats if s.start_time is not None and s.end_time is not None}
    return RunTimes(run.run_id, run.tags.get("dagster/partition", "?"), run.status.value,
                    record.create_timestamp.timestamp(), starting[0].timestamp if starting else None,
                    record.start_time, record.end_time, sum(steps.values()), len(steps), steps)


def run_backfill(gql: GraphQL, instance: dg.DagsterInstance, batches: list[str], submit: str,
                 timeout_s: float) -> tuple[float, float, list[RunTimes]]:
    """(submitted at, all finished at, per-run times): submit, then wait until every run is done."""
    submitted = time.time()
    if submit == "backfill":
        params = {"selector": {"partitionSetName": PARTITION_SET, "repositorySelector": REPO_SELECTOR},
                  "partitionNames": batches, "title": f"bench/scale.py: {len(batches)} batches"}
        answer = gql(M_BACKFILL, params=params)["launchPartitionBackfill"]
        if answer["__typename"] != "LaunchBackfillSuccess":
            raise RuntimeError(f"backfill not launched: {answer}")
        run_filter = dg.RunsFilter(tags={"dagster/backfill": answer["backfillId"]})
    else:
        ids = []
        for batch in batches:
            params = {"selector": {**REPO_SELECTOR, "jobName": INGEST_JOB},
                      "executionMetadata": {"tags": [{"key": "dagster/partition", "value": batch},
                                                     {"key": "creatorlens/bench", "value": "scale"}]}}
            answer = gql(M_RUN, params=params)["launchPipelineExecution"]
            if answer["__typename"] != "LaunchRunSuccess":
                raise RuntimeError(f"run not launched: {answer}")
            ids.append(answer["run"]["runId"])
        run_filter = dg.RunsFilter(run_ids=ids)
    finished = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
    deadline = time.monotonic() + timeout_s
    while True:
        records = instance.get_run_records(filters=run_filter)
        # a retried run (run_retries) is a new run of the same partition: the last one counts
        latest = {}
        for r in sorted(records, key=lambda r: r.create_timestamp):
            latest[r.dagster_run.tags.get("dagster/partition")] = r
        if len(latest) == len(batches) and all(r.dagster_run.status in finished for r in latest.values()):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"backfill not done after {timeout_s:.0f} s: "
                               f"{sorted(r.dagster_run.status.value for r in records)}")
        time.sleep(2)
    return submitted, time.time(), [run_times(instance, r) for r in records]


# ---- report ------------------------------------------------------------------------------------------

def _fmt_n(n: int | None) -> str:
    return "" if n is None else f"{n:,}"


def print_table(rows: list[Row]) -> None:
    order = list(dict.fromkeys(r.section for r in rows))
    rows = sorted(rows, key=lambda r: order.index(r.section))  # stable: each section in measuring order
    print(f"{'measurement':<62}{'n':>8}{'seconds':>10}{'ms/item':>9}{'vs baseline':>13}{'n/10 (s)':>10}{'growth':>8}")
    section = None
    for r in rows:
        if r.section != section:
            section = r.section
            print(f"-- {section}")
        per = f"{1000 * r.seconds / r.n:>9.3f}" if r.n else f"{'':>9}"
        ratio = f"{r.seconds / r.baseline_s:>12.1f}x" if r.baseline_s else f"{'':>13}"
        small = f"{r.small_s:>10.3f}" if r.small_s else f"{'':>10}"
        growth = f"{math.log(r.seconds / r.small_s) / math.log(10):>8.2f}" if r.small_s else f"{'':>8}"
        print(f"{r.name:<62}{_fmt_n(r.n):>8}{r.seconds:>10.3f}{per}{ratio}{small}{growth}")
    baselines = {(r.baseline, r.baseline_s) for r in rows if r.baseline}
    for name, secs in sorted(baselines, key=lambda b: b[0]):
        print(f"   baseline {name}: {secs:.3f} s")


def _mb(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB"


def report_storage(before: dict, after: dict | None, n_partitions: int, n_events: int, n_runs: int) -> None:
    total_b, files_b = _total(before)
    print(f"DAGSTER_HOME on disk after the above ({n_partitions} partitions, {n_events} runless materialisations, "
          f"no runs): {_mb(total_b)} in {files_b} files"
          + (f"; after the {n_runs}-run backfill: {_mb(_total(after)[0])} in {_total(after)[1]} files" if after else ""))
    for part in sorted(set(before) | set(after or {})):
        b = before.get(part, (0, 0))[0]
        line = f"   {part:<46}{_mb(b):>12}"
        if after:
            a = after.get(part, (0, 0))[0]
            line += f"{_mb(a):>12}" + (f"   +{(a - b) / n_runs / 2**10:,.0f} KiB per run" if n_runs and a > b else "")
        print(line)
    if after and n_runs:
        per_run = (_total(after)[0] - total_b) / n_runs
        print(f"   at {per_run / 2**20:.2f} MiB per run, one run per batch: {_mb(per_run * n_partitions)} "
              f"for one pass over all {n_partitions} batches (the monthly re-processing adds as much each month)")


def report_backfill(runs: list[RunTimes], submitted: float, done: float, submit: str) -> None:
    ok = [r for r in runs if r.status == "SUCCESS"]
    if not runs:
        return
    first_launch = min(r.launched or r.created for r in runs)
    last_end = max(r.ended or done for r in runs)
    span = last_end - submitted
    print(f"backfill ({submit}): {len(runs)} runs ({len(ok)} succeeded), submitted → last run ended in {span:.1f} s "
          f"= {3600 * len(runs) / span:,.0f} runs/hour; first launch → last end {last_end - first_launch:.1f} s "
          f"= {3600 * len(runs) / (last_end - first_launch):,.0f} runs/hour")
    events = sorted([(r.started, 1) for r in runs if r.started] + [(r.ended, -1) for r in runs if r.ended])
    live = peak = 0
    for _, d in events:
        live += d
        peak = max(peak, live)
    print(f"   at most {peak} runs executing at once (dagster.yaml: max_concurrent_runs 4, 2 per backfill)")
    timed = [r for r in ok if r.launched and r.started and r.ended]
    if not timed:
        return
    cols = {
        "queued (created → RUN_STARTING)": [r.launched - r.created for r in timed],
        "launch (RUN_STARTING → RUN_START: process + code load)": [r.started - r.launched for r in timed],
        "run body (RUN_START → end)": [r.ended - r.started for r in timed],
        "  steps (sum of step durations)": [r.steps_s for r in timed],
        "  body not in steps (executor, events, IO)": [(r.ended - r.started) - r.steps_s for r in timed],
        "launch + body (per-run cost)": [r.ended - r.launched for r in timed],
    }
    print(f"   {'per run (s)':<58}{'median':>8}{'mean':>8}{'max':>8}")
    for name, values in cols.items():
        print(f"   {name:<58}{statistics.median(values):>8.2f}{statistics.mean(values):>8.2f}{max(values):>8.2f}")
    by_step: dict[str, list[float]] = {}
    for r in timed:
        for step, secs in r.step_s.items():
            by_step.setdefault(step, []).append(secs)
    slowest = sorted(by_step.items(), key=lambda kv: -statistics.median(kv[1]))[:6]
    print("   slowest steps (median s): " + ", ".join(f"{k} {statistics.median(v):.2f}" for k, v in slowest))
    steps = sum(r.steps_s for r in timed)
    cost = sum(r.ended - r.launched for r in timed)
    print(f"   step work is {100 * steps / cost:.0f} % of the per-run cost; overhead {cost - steps:.1f} s of {cost:.1f} s "
          f"({statistics.median(r.n_steps for r in timed):.0f} steps per run)")


# ---- main ----------------------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--creators", type=int, default=50_000, help="creators in the sources (default 50,000)")
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--backfill-batches", type=int, default=20,
                    help="batches run through the daemon (0: no backfill, no daemon); their creators get 0-2 images")
    ap.add_argument("--submit", choices=["backfill", "runs"], default="backfill",
                    help="a partition backfill (as the UI) or one submitted run per batch (as the sensor)")
    ap.add_argument("--backfill-timeout", type=float, default=1800, help="seconds to wait for the backfill")
    ap.add_argument("--no-graphql", action="store_true", help="skip the webserver (and so the backfill)")
    ap.add_argument("--profile", type=Path, help="write a cProfile dump of each in-process measurement here")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, instance, warehouse)")
    args = ap.parse_args()
    logging.disable(logging.INFO)  # the sensor's INFO line per tick
    if args.creators < 10 * args.batch_size:
        ap.error("--creators must be at least 10 batches (the n/10 comparison needs one)")
    n_json = min(args.backfill_batches * args.batch_size, args.creators)
    bench = Bench(args.profile)

    tmp = Path(tempfile.mkdtemp(prefix="creatorlens-bench-scale-"))
    pgdata = tmp / "pgdata"
    pgserver.start(pgdata)
    procs: list[Process] = []
    try:
        wh = Warehouse(pgdata)
        built = time.perf_counter()
        csv_dir, json_dir, image_creators = write_sources(tmp / "sources", args.creators - n_json, n_json, images=True)
        small_n = args.creators // 10
        s_csv, s_json, _ = write_sources(tmp / "sources_small", small_n - n_json // 10, n_json // 10, images=False)
        built = time.perf_counter() - built
        world = World(tmp, csv_dir, json_dir, image_creators, args.creators, wh.fresh("bench_main"),
                      dagster_home(tmp / "dagster_home"))
        small = World(tmp / "small", s_csv, s_json, [], small_n, wh.fresh("bench_small"),
                      dagster_home(tmp / "small" / "dagster_home"))
        print(f"{args.creators:,} creators ({args.creators - n_json:,} CSV + {n_json:,} JSON dumps with "
              f"{sum(i % 3 for i in range(n_json)):,} images), batches of {args.batch_size}; sources written in "
              f"{built:.1f} s; {os.cpu_count()} cores{'; cProfile ON (times inflated)' if args.profile else ''}",
              flush=True)

        # 1. the n/10 world first (its rows are the growth baselines), then the full one
        low = small_world(bench, wh, small, args.batch_size)
        full_s, assign_s = measure_assignment(bench, wh, world, "full", args.batch_size)
        scale = "scale: N vs N/10 (own warehouse + instance each)"
        bench.rows += [
            Row(scale, "batch assignment: batch_new_creators (read + assign + stamp)", args.creators, full_s,
                small_s=low["batch_new_creators"]),
            Row(scale, "batch assignment: assign_batches (warehouse part)", args.creators, assign_s,
                small_s=low["assign_batches"]),
        ]

        defs = build_definitions(world.settings(args.batch_size))
        defs.resources["warehouse"].get_engine()
        graph = defs.resolve_asset_graph()
        engine = get_engine(world.url)
        with dg.DagsterInstance.from_config(str(world.home)) as instance:
            tick_all_s, result = bench.time("tick_all", lambda: tick(defs, instance, None))
            keys = list(result.dynamic_partitions_requests[0].partition_keys)
            assert len(result.run_requests) == len(keys) == math.ceil(args.creators / args.batch_size)
            register_s, added = bench.time("register", lambda: register_batches(instance, keys))
            assert added == keys
            idle = []
            for i in range(5):
                secs, skip = bench.time(f"tick_idle_{i}", lambda: tick(defs, instance, result.cursor))
                assert isinstance(skip, dg.SkipReason), skip
                idle.append(secs)
            idle_s = statistics.median(idle)
            rescan_s, rescan = bench.time("tick_rescan", lambda: tick(defs, instance, None))
            assert not rescan.run_requests, rescan

            # steady state: the warehouse holds every batched creator (as after a full backfill), 1,000 arrive
            with engine.begin() as conn:
                conn.exec_driver_sql("INSERT INTO creators (platform, username, full_name, batch_key) "
                                     "SELECT platform, username, username, batch_key FROM creator_batches "
                                     "ON CONFLICT DO NOTHING")
            _, settled = bench.time("tick_settle", lambda: tick(defs, instance, result.cursor))  # sees the inserts
            settled_cursor = settled.cursor
            write_creators_csv(csv_dir / "export_new.csv", [f"new.creator{i:05d}" for i in range(NEW_IN_STEADY_STATE)])
            tick_new_s, new = bench.time("tick_1000_new", lambda: tick(defs, instance, settled_cursor))
            new_keys = list(new.dynamic_partitions_requests[0].partition_keys)
            assert len(new_keys) == math.ceil(NEW_IN_STEADY_STATE / args.batch_size), new_keys
            instance.add_dynamic_partitions(CREATOR_BATCHES, new_keys)

            ticks = "new_creator_sensor tick vs an idle tick"
            idle_row = ("idle tick", idle_s)
            bench.rows += [
                Row(scale, f"sensor tick finding all {args.creators:,} (empty warehouse)", args.creators, tick_all_s,
                    *idle_row, small_s=low["tick_all"]),
                Row(scale, f"register_batches: {len(keys)} new batch keys", len(keys), register_s,
                    small_s=low["register"]),
                Row(ticks, f"finds {NEW_IN_STEADY_STATE:,} new among {args.creators:,} promoted",
                    NEW_IN_STEADY_STATE, tick_new_s, *idle_row),
                Row(ticks, "cursor lost, rescan finds nothing new", args.creators, rescan_s, *idle_row),
                Row(ticks, "idle (cursor matches, median of 5)", None, idle_s, *idle_row),
            ]

            # 2. the monthly schedule over the promoted batches
            record_s, events = bench.time("record", lambda: record_promotions(instance, graph, keys))
            sched_s, plan_s, n_requests = measure_schedule(bench, defs, instance, "full")
            bench.rows += [
                Row(scale, f"monthly_reprocess tick ({n_requests} run requests)", len(keys), sched_s,
                    small_s=low["schedule_tick"]),
                Row(scale, "  of which reprocess_plan", len(keys), plan_s, small_s=low["reprocess_plan"]),
                Row(scale, "(setup) report_runless_asset_event, 3 per batch", events, record_s,
                    small_s=low["record"]),
            ]
            size_before = storage(world.home)

            # 3. GraphQL, then 4. the backfill through the daemon
            env = _env(world, args.batch_size)
            submitted = done = None
            runs: list[RunTimes] = []
            up_s = None
            if not args.no_graphql:
                port = _free_port()
                web = Process([str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port),
                               "-w", str(REPO_ROOT / "workspace.yaml")], env, tmp / "webserver.log")
                procs.append(web)
                gql = GraphQL(port)
                up_s = gql.wait_until_loaded(web)
                measure_graphql(bench, gql, len(keys) + len(new_keys))
                if args.backfill_batches:
                    batches = _batches_of(engine, set(image_creators))[:args.backfill_batches]
                    daemon = Process([str(BIN / "dagster-daemon"), "run", "-w", str(REPO_ROOT / "workspace.yaml")],
                                     env, tmp / "daemon.log")
                    procs.append(daemon)
                    submitted, done, runs = run_backfill(gql, instance, batches, args.submit, args.backfill_timeout)
            for p in reversed(procs):
                p.stop()
            size_after = storage(world.home)
    finally:
        for p in reversed(procs):
            p.stop()
        dispose_engines()
        pgserver.stop(pgdata)
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    print()
    print_table(bench.rows)
    report_storage(size_before, size_after if runs else None, len(keys) + len(new_keys), events, len(runs))
    if up_s is not None:
        print(f"dagster-webserver up (code location loaded) in {up_s:.1f} s")
    if runs:
        report_backfill(runs, submitted, done, args.submit)
    if args.keep:
        print(f"kept: {tmp}")


def _batches_of(engine, members: set[str]) -> list[str]:
    """The batches all of whose creators are in ``members`` (the ones with images)."""
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT batch_key, array_agg(username) FROM creator_batches GROUP BY batch_key "
                                    "ORDER BY batch_key").all()
    return [key for key, names in rows if set(names) <= members]


if __name__ == "__main__":
    main()
