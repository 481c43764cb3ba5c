"""New-creator sensor: one tick that finds N new creators, against an idle tick and a full rescan.

The sources are a CSV export (80 % of the creators) and a folder of JSON dumps (20 %, one file per
creator); the warehouse is a temporary embedded PostgreSQL (or ``--database-url``) and the
instance a temporary local Dagster instance with our dagster.yaml. Each repeat starts from an
empty warehouse and instance. The sensor is evaluated exactly as in the tests, with
``build_sensor_context`` and the Definitions' own resources. Baselines, measured in the same run:

* idle tick: nothing changed, the cursor matches (what almost every tick is);
* rescan tick: the cursor is lost, every source is read again, nothing is new.

    python bench/sensor_tick.py --creators 1000
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg
import psycopg
from psycopg import sql as pgsql
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assets.common.partitions import CREATOR_BATCHES  # noqa: E402
from assets.sources.sample_data import write_creators_csv  # noqa: E402
from bench._record import record  # noqa: E402
from creatorlens.settings import REPO_ROOT, Settings  # noqa: E402
from orchestration.definitions import build_definitions  # noqa: E402
from orchestration.sensors import NEW_CREATOR_SENSOR  # noqa: E402
from resources.warehouse import embedded_server, normalise_url  # noqa: E402

TARGET_S = 5.0


def write_sources(root: Path, n: int) -> tuple[Path, Path]:
    n_json = n // 5
    csv_dir, json_dir = root / "csv", root / "json"
    json_dir.mkdir(parents=True)
    write_creators_csv(csv_dir / "export.csv", [f"csv.creator{i:05d}" for i in range(n - n_json)])
    for i in range(n_json):
        name = f"json.creator{i:05d}"
        doc = {"data": {"user": {"username": name, "full_name": name, "biography": "bench",
                                 "edge_followed_by": {"count": i}, "edge_owner_to_timeline_media": {"edges": []}}}}
        (json_dir / f"web_profile_info({name})_1.json").write_text(json.dumps(doc))
    return csv_dir, json_dir


def tick(sensor, defs, instance, cursor):
    context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs,
                                      resources=defs.resources, sensor_name=NEW_CREATOR_SENSOR)
    started = time.perf_counter()
    result = sensor(context)
    return time.perf_counter() - started, result


def one_repeat(url: str, root: Path, n: int, batch_size: int) -> tuple[float, float, float, int, int]:
    csv_dir, json_dir = write_sources(root / "sources", n)
    settings = Settings(state_dir=root / "state", database_url=url, csv_dir=csv_dir, json_dir=json_dir,
                        batch_size=batch_size)
    defs = build_definitions(settings)
    sensor = defs.resolve_sensor_def(NEW_CREATOR_SENSOR)
    defs.resources["warehouse"].get_engine()  # a code server keeps its engine: connect + migrate once, untimed
    home = root / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO_ROOT / "dagster.yaml").read_text())
    with dg.DagsterInstance.from_config(str(home)) as instance:
        new_s, result = tick(sensor, defs, instance, None)
        keys = list(result.dynamic_partitions_requests[0].partition_keys)
        instance.add_dynamic_partitions(CREATOR_BATCHES, keys)  # what the daemon does with the result
        idle_s, idle = tick(sensor, defs, instance, result.cursor)
        assert isinstance(idle, dg.SkipReason), idle
        rescan_s, rescan = tick(sensor, defs, instance, None)
        assert not rescan.run_requests, rescan
    return new_s, idle_s, rescan_s, len(result.run_requests), len(keys)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--creators", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3, help="median of this many repeats")
    ap.add_argument("--database-url", help="use this PostgreSQL instead of a temporary embedded one")
    ap.add_argument("--record", action="store_true",
                    help="write bench/results/<name>.json for bench/figures.py (the README's figures table)")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="creatorlens-bench-sensor-"))
    server = None if args.database_url else embedded_server(tmp / "pgdata")
    admin = args.database_url.replace("+psycopg", "") if args.database_url else server.get_uri()
    runs = []
    for rep in range(args.repeats):
        db = f"bench_sensor_{rep}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(pgsql.SQL("DROP DATABASE IF EXISTS {}").format(pgsql.Identifier(db)))
            conn.execute(pgsql.SQL("CREATE DATABASE {}").format(pgsql.Identifier(db)))
        url = normalise_url(server.get_uri(database=db)) if server is not None else \
            make_url(normalise_url(args.database_url)).set(database=db).render_as_string(hide_password=False)
        runs.append(one_repeat(url, tmp / f"rep{rep}", args.creators, args.batch_size))
    new_s, idle_s, rescan_s = (statistics.median(r[i] for r in runs) for i in range(3))
    n_runs, n_batches = runs[0][3], runs[0][4]
    print(f"new-creator sensor: {args.creators:,} new creators (CSV + {args.creators // 5} JSON dumps), "
          f"batches of {args.batch_size}, median of {args.repeats}")
    print(f"{'tick':<46}{'seconds':>9}{'creators/s':>12}{'vs idle':>10}{'vs rescan':>11}")
    for name, secs in (
        (f"finds {args.creators:,} new: {n_batches} batches, {n_runs} run requests", new_s),
        ("rescan, nothing new (cursor lost)", rescan_s),
        ("idle (cursor matches)", idle_s),
    ):
        print(f"{name:<46}{secs:>9.3f}{args.creators / secs:>12,.0f}{secs / idle_s:>9.1f}x{secs / rescan_s:>10.2f}x")
    verdict = "within" if new_s <= TARGET_S else "OVER"
    print(f"target: a tick finding {args.creators:,} new creators in <= {TARGET_S:.0f} s: {verdict} ({new_s:.2f} s)")
    if server is not None:
        server.cleanup()
    if args.record:
        n_json = args.creators // 5
        record("sensor_tick", [(
            f"new-creator sensor, tick finding {args.creators:,} new creators ({args.creators - n_json:,} CSV rows + "
            f"{n_json:,} JSON dumps → {n_batches} batches, {n_runs} run requests)",
            f"{new_s:.3f} s (target ≤ {TARGET_S:g} s{'' if new_s <= TARGET_S else ', OVER'}), "
            f"median of {args.repeats}",
            f"idle tick (cursor matches) {idle_s:.3f} s; full rescan, nothing new {rescan_s:.3f} s",
        )])


if __name__ == "__main__":
    main()
