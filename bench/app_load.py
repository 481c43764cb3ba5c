"""Load on the review and search app (issue 14): 32 concurrent clients on loopback, mixed reads plus
concurrent review writes on shared queue items, with distinct tokens and with one shared token.

The warehouse is bench/search.py's synthetic one (``generate`` + ``load``: creators, posts, images,
OCR, AI tags, halfvec embeddings under the production HNSW index), small by default, plus an exclusive
tag category with rival queue items on ``--queued`` images (two or three each), so reviewers collide
on the same items and the same images. The app runs in its own process (uvicorn on 127.0.0.1, the
production engine and its 5 + 5 pool); the clients are one bounded asyncio httpx loop each, in this
process. The query embedder is a stand-in (a hash of the query text to a unit vector of the version's
dimension): what is measured is the app and the database, not a text tower.

Per phase (``--seconds`` each, default 60): ``--clients`` (32) clients, of which ``--writers`` (8) are
reviewers. A reader picks, per request: the gallery page, hybrid search, keyword search, an image page,
the image tag API, popular tags. A reviewer alternates a read with a decision (accept or reject) on an
item drawn from the shared pending list, which every reviewer draws from: a 409 (someone else decided
it first, or a rival's acceptance superseded it) is the expected answer to a collision, not an error.
Errors are 5xx, transport errors and time-outs, and any other unexpected status.

Afterwards the warehouse is checked: every item decided by a 200 is resolved exactly once, each
accepted or rejected item has exactly one feedback row for its own tag, no (decision, tag) has two
feedback rows, and no image carries two present reviewer tags of the exclusive category.

``--baseline-src DIR`` serves the same phases from another source tree too (e.g. ``git archive`` of
the commit before the fixes, unpacked in DIR), on a fresh copy of the same data, for today's-vs-then
figures in one run.

    python bench/app_load.py                       # 2 phases × 60 s
    python bench/app_load.py --seconds 20          # quicker
    python bench/app_load.py --seconds 20 --baseline-src /tmp/base
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VERSION = "bench/search@1"  # bench.search's model version (kept in step by an assertion)
EXCLUSIVE = "bench_scene"
RIVALS = ["scene_beach", "scene_city", "scene_forest"]
TARGET_P95_MS = 300.0


# ---- the server process ------------------------------------------------------------------------------
class HashEmbedder:
    """Query text → a deterministic unit vector (stand-in for the text tower)."""

    def __init__(self, version: str, dim: int) -> None:
        self.version, self.dim = version, dim

    def embed_texts(self, texts, batch_size=None):
        import numpy as np

        out = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
            v = np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)
            out.append(v / np.linalg.norm(v))
        return np.stack(out)


def serve(url: str, port: int, blob_root: str, dim: int, src: str | None) -> None:
    if src:
        sys.path.insert(0, src)
    else:
        sys.path.insert(0, str(REPO))
    import uvicorn

    from app.main import create_app
    from resources.warehouse import get_engine

    app = create_app(get_engine(url, migrate=False), blob_root, embedder=HashEmbedder(VERSION, dim))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error", access_log=False)


# ---- the data ------------------------------------------------------------------------------------------
def build(url: str, n: int, dim: int, queued: int, clients: int, seed: int) -> dict:
    """bench.search's warehouse, then the exclusive category, rival queue items, users and tokens."""
    import numpy as np
    import psycopg

    sys.path.insert(0, str(REPO))
    import bench.search as bs
    from app.auth import create_user
    from resources.warehouse import apply_migrations, get_engine

    assert bs.VERSION == VERSION
    rng = np.random.default_rng(seed)
    corpus = bs.generate(n, dim, max(10, n // 100), max(1, n // 10), rng)
    engine = get_engine(url, migrate=False)
    apply_migrations(engine)
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        bs.load(conn, corpus, bs.DEFAULT_HNSW_M, bs.DEFAULT_HNSW_EF_CONSTRUCTION)
        with conn.transaction(), conn.cursor() as cur:
            for name in RIVALS:
                cur.execute("INSERT INTO tags (name, category, exclusive, taxonomy_version) VALUES (%s, %s, true, %s)",
                            (name, EXCLUSIVE, bs.TAXONOMY))
            tag_ids = [r[0] for r in cur.execute("SELECT tag_id FROM tags WHERE category = %s ORDER BY name",
                                                 (EXCLUSIVE,)).fetchall()]
            images = [r[0] for r in cur.execute("SELECT image_id FROM images ORDER BY image_id LIMIT %s",
                                                (queued,)).fetchall()]
            rows = []
            for k, image_id in enumerate(images):
                for tag_id in tag_ids[: 2 + k % 2]:  # two or three rivals per image
                    confidence = float(rng.uniform(0.5, 0.9))
                    cur.execute("INSERT INTO image_tags (image_id, tag_id, source, model_version, present, confidence, "
                                "threshold, threshold_source, taxonomy_version, batch_key) "
                                "VALUES (%s, %s, 'ai', %s, true, %s, 0.5, 'taxonomy', %s, 'bench')",
                                (image_id, tag_id, VERSION, confidence, bs.TAXONOMY))
                    rows.append((image_id, tag_id, VERSION, "exclusive_conflict", confidence, 0.5, 0.3, bs.TAXONOMY,
                                 "bench"))
            cur.executemany("INSERT INTO tag_review_queue (image_id, tag_id, model_version, reason, confidence, "
                            "threshold, review_floor, taxonomy_version, batch_key) "
                            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)", rows)
        conn.execute("VACUUM ANALYZE")
    with engine.begin() as conn:
        create_user(conn, "reader", "bench password one", "viewer")
        create_user(conn, "reviewer", "bench password two", "reviewer")
    engine.dispose()
    return {"images": [bs.image_key(i) for i in range(n)], "queries": [q.text for q in bs.make_queries(corpus, 40, rng)]}


def issue_tokens(url: str, clients: int, writers: int) -> tuple[list[str], dict[str, str]]:
    """One token per client (readers as viewer ``reader``, writers as ``reviewer``) and one shared
    token of each role."""
    sys.path.insert(0, str(REPO))
    from app.auth import issue_api_token
    from resources.warehouse import get_engine

    engine = get_engine(url, migrate=False)
    with engine.begin() as conn:
        distinct = [issue_api_token(conn, "reviewer" if i < writers else "reader", f"bench-{i}") for i in range(clients)]
        shared = {"reviewer": issue_api_token(conn, "reviewer", "bench-shared-r"),
                  "viewer": issue_api_token(conn, "reader", "bench-shared-v")}
    engine.dispose()
    return distinct, shared


# ---- the clients ---------------------------------------------------------------------------------------
@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    conflicts: int = 0
    decided: list[int] = field(default_factory=list)
    requests: int = 0
    summary: dict = field(default_factory=dict)  # report()'s figures, for --record


READS = [("gallery", 2), ("search hybrid", 3), ("search keyword", 3), ("image page", 2), ("image tags API", 3),
         ("popular tags API", 1)]


async def client_loop(base: str, token: str, writer: bool, data: dict, pending: list[int], stats: Stats,
                      deadline: float, max_requests: int, rng: random.Random, timeout_s: float) -> None:
    import httpx

    names, weights = zip(*READS, strict=True)
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"},
                                 timeout=timeout_s) as client:
        for n in range(max_requests):
            if time.monotonic() >= deadline:
                return
            if writer and n % 2 == 1 and pending:
                name = "review decision"
                review_id = rng.choice(pending)
                request = client.post(f"/api/review/{review_id}",
                                      json={"action": rng.choice(["accept", "accept", "reject"])})
            else:
                name = rng.choices(names, weights)[0]
                key = rng.choice(data["images"])
                q = rng.choice(data["queries"])
                request = {
                    "gallery": lambda: client.get("/", params={"page": rng.randint(1, 20)}),
                    "search hybrid": lambda: client.get("/api/search", params={"q": q, "mode": "hybrid", "limit": 20}),
                    "search keyword": lambda: client.get("/api/search", params={"q": q, "mode": "keyword", "limit": 20}),
                    "image page": lambda: client.get(f"/images/{key}"),
                    "image tags API": lambda: client.get(f"/api/images/{key}/tags"),
                    "popular tags API": lambda: client.get("/api/tags/popular", params={"limit": 20}),
                }[name]()
            started = time.perf_counter()
            try:
                response = await request
            except httpx.HTTPError as exc:
                stats.errors[f"{name}: {type(exc).__name__}"] += 1
                continue
            finally:
                stats.requests += 1
            stats.latencies[name].append((time.perf_counter() - started) * 1000)
            if response.status_code == 200:
                if name == "review decision":
                    stats.decided.append(review_id)
                    if review_id in pending:
                        pending.remove(review_id)
            elif name == "review decision" and response.status_code == 409:
                stats.conflicts += 1
                if review_id in pending:
                    pending.remove(review_id)
            else:
                stats.errors[f"{name}: {response.status_code}"] += 1


async def run_phase(base: str, tokens: list[str], writers: int, data: dict, pending: list[int], seconds: float,
                    max_requests: int, seed: int, timeout_s: float) -> tuple[Stats, float]:
    stats = Stats()
    deadline = time.monotonic() + seconds
    started = time.monotonic()
    await asyncio.gather(*(
        client_loop(base, token, i < writers, data, pending, stats, deadline, max_requests,
                    random.Random(seed * 1000 + i), timeout_s)
        for i, token in enumerate(tokens)))
    return stats, time.monotonic() - started


def consistency(url: str, decided: list[int]) -> dict:
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        q = lambda sql, *a: conn.execute(sql, a).fetchone()[0]  # noqa: E731
        return {
            "decisions answered 200": len(decided),
            "distinct items decided by a 200": len(set(decided)),
            "items resolved by a decision (accepted/rejected)":
                q("SELECT count(*) FROM tag_review_queue WHERE status IN ('accepted', 'rejected')"),
            "decided items whose own-tag feedback rows != 1": q(
                "SELECT count(*) FROM tag_review_queue r WHERE r.status IN ('accepted', 'rejected') AND "
                "(SELECT count(*) FROM tag_feedback f WHERE f.review_id = r.review_id AND f.tag_id = r.tag_id) <> 1"),
            "(decision, tag) pairs with > 1 feedback row": q(
                "SELECT count(*) FROM (SELECT review_id, tag_id FROM tag_feedback WHERE review_id IS NOT NULL "
                "GROUP BY 1, 2 HAVING count(*) > 1) d"),
            "superseded items without a settling feedback row": q(
                "SELECT count(*) FROM tag_review_queue s WHERE s.status = 'superseded' AND NOT EXISTS ("
                "SELECT 1 FROM tag_feedback f WHERE f.image_id = s.image_id AND f.tag_id = s.tag_id)"),
            "images with two present reviewer tags of the exclusive category": q(
                "SELECT count(*) FROM (SELECT t.image_id FROM image_tags t JOIN tags g ON g.tag_id = t.tag_id "
                "WHERE g.category = %s AND t.source = 'user' AND t.present GROUP BY 1 HAVING count(*) > 1) x",
                EXCLUSIVE),
        }


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def report(label: str, stats: Stats, elapsed: float, checks: dict) -> bool:
    print(f"\n== {label}: {stats.requests} requests in {elapsed:.1f}s ({stats.requests / elapsed:.0f}/s); "
          f"load average after it {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"   {'endpoint':<20} {'n':>6} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    worst_read = 0.0
    for name, values in sorted(stats.latencies.items()):
        p95 = pct(values, 95)
        if name != "review decision":
            worst_read = max(worst_read, p95)
        print(f"   {name:<20} {len(values):>6} {pct(values, 50):>8.1f} {p95:>8.1f} {max(values):>8.1f}")
    errors = sum(stats.errors.values())
    print(f"   errors: {errors} {dict(stats.errors) if errors else ''}; review 409s (collisions): {stats.conflicts}")
    for k, v in checks.items():
        print(f"   check: {k}: {v}")
    consistent = (checks["distinct items decided by a 200"] == checks["decisions answered 200"]
                  == checks["items resolved by a decision (accepted/rejected)"]
                  and all(v == 0 for k, v in checks.items() if "!=" in k or ">" in k or "without" in k or "two" in k))
    ok = errors == 0 and consistent and worst_read <= TARGET_P95_MS
    print(f"   consistent: {consistent}; worst read p95 {worst_read:.0f} ms (target ≤ {TARGET_P95_MS:.0f}) -> "
          f"{'PASS' if ok else 'FAIL'}")
    stats.summary = {"rate": stats.requests / elapsed, "worst_read_p95": worst_read, "errors": errors,
                     "consistent": consistent, "conflicts": stats.conflicts, "ok": ok}
    return ok


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(base: str, proc: subprocess.Popen, limit_s: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the app process exited with {proc.returncode}")
        try:
            httpx.get(base + "/login", timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit("the app did not start")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0, help="per phase (default: 60)")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--writers", type=int, default=8, help="of the clients, reviewers (default: 8)")
    ap.add_argument("--n", type=int, default=5000, help="images (default: 5000)")
    ap.add_argument("--dim", type=int, default=256, help="embedding dims (default: 256)")
    ap.add_argument("--queued", type=int, default=400, help="images with rival queue items (default: 400)")
    ap.add_argument("--max-requests", type=int, default=100_000, help="per client and phase (a bound)")
    ap.add_argument("--timeout", type=float, default=30.0, help="client time-out per request, s (default: 30)")
    ap.add_argument("--baseline-src", type=Path, default=None,
                    help="another source tree to serve the same phases from (e.g. the commit before the fixes)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--baseline-label", default=None, help="what --baseline-src is, for --record (e.g. a commit)")
    ap.add_argument("--record", action="store_true",
                    help="write bench/results/app_load.json for bench/figures.py (the README's figures table)")
    ap.add_argument("--serve", nargs=5, metavar=("URL", "PORT", "BLOBS", "DIM", "SRC"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        url, port, blobs, dim, src = args.serve
        serve(url, int(port), blobs, int(dim), None if src == "-" else src)
        return

    sys.path.insert(0, str(REPO))
    import psycopg
    from psycopg import sql as pgsql

    from resources.warehouse import embedded_server

    print(f"app load benchmark: {os.cpu_count()} CPU cores, {args.clients} clients ({args.writers} reviewers), "
          f"{args.seconds:.0f} s per phase, {args.n} images × {args.dim} dims, {args.queued} images with rival items; "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    root = Path(tempfile.mkdtemp(prefix="bench-app-load-"))
    server = embedded_server(root / "pgdata")
    results = []
    summaries: dict[tuple[str, str], dict] = {}
    procs: list[subprocess.Popen] = []
    try:
        admin = server.get_uri()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("CREATE DATABASE app_load")
        url = server.get_uri(database="app_load").replace("postgresql://", "postgresql+psycopg://")
        t = time.perf_counter()
        data = build(url, args.n, args.dim, args.queued, args.clients, args.seed)
        print(f"warehouse built in {time.perf_counter() - t:.0f}s")
        trees = [("fixed", None)] + ([("baseline", str(args.baseline_src))] if args.baseline_src else [])
        for tree, src in trees:
            for phase, shared in (("distinct tokens", False), ("one shared token", True)):
                name = f"{tree}-{'shared' if shared else 'distinct'}".replace("-", "_")
                with psycopg.connect(admin, autocommit=True) as conn:  # each phase on a fresh copy of the data
                    conn.execute(pgsql.SQL("CREATE DATABASE {} TEMPLATE app_load").format(pgsql.Identifier(name)))
                phase_url = server.get_uri(database=name).replace("postgresql://", "postgresql+psycopg://")
                distinct, shared_tokens = issue_tokens(phase_url, args.clients, args.writers)
                tokens = ([shared_tokens["reviewer"]] * args.writers + [shared_tokens["viewer"]] * (args.clients - args.writers)
                          if shared else distinct)
                with psycopg.connect(phase_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
                    pending = [r[0] for r in conn.execute("SELECT review_id FROM tag_review_queue WHERE status = 'pending'")]
                port = free_port()
                server_log = root / f"{name}.log"  # the app's own stderr (tracebacks of its 500s)
                with server_log.open("wb") as log_file:
                    proc = subprocess.Popen([sys.executable, __file__, "--serve", phase_url, str(port),
                                             str(root / "blobs"), str(args.dim), src or "-"],
                                            cwd=src or str(REPO), stdout=log_file, stderr=subprocess.STDOUT)
                procs.append(proc)
                base = f"http://127.0.0.1:{port}"
                try:
                    wait_up(base, proc)
                    stats, elapsed = asyncio.run(run_phase(base, tokens, args.writers, data, pending, args.seconds,
                                                           args.max_requests, args.seed, args.timeout))
                finally:
                    proc.terminate()
                    proc.wait(20)
                checks = consistency(phase_url, stats.decided)
                results.append((f"{tree} app, {phase}", report(f"{tree} app, {phase}", stats, elapsed, checks)))
                summaries[(tree, phase)] = stats.summary
                tracebacks = server_log.read_text(errors="replace").count("Traceback")
                if tracebacks:
                    print(f"   the app logged {tracebacks} tracebacks; the last line: "
                          f"{server_log.read_text(errors='replace').strip().splitlines()[-1][:200]}")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)
    print("\nsummary: " + json.dumps({label: "PASS" if ok else "FAIL" for label, ok in results}))
    if args.record:
        from _record import record

        def figures(m: dict) -> str:
            return (f"{m['rate']:.0f} requests/s, worst read p95 {m['worst_read_p95']:.0f} ms, {m['errors']} errors, "
                    f"data {'consistent' if m['consistent'] else 'INCONSISTENT'}")

        rows = []
        for phase in ("distinct tokens", "one shared token"):
            fixed = summaries.get(("fixed", phase))
            if fixed is None:
                continue
            base = summaries.get(("baseline", phase))
            rows.append((f"app under load: {args.clients} clients ({args.writers} reviewers) for {args.seconds:.0f} s, "
                         f"{phase}, mixed reads + review writes (target: 0 errors, read p95 ≤ {TARGET_P95_MS:.0f} ms)",
                         figures(fixed), f"{args.baseline_label or args.baseline_src}: {figures(base)}" if base else "—"))
        record("app_load", rows)


if __name__ == "__main__":
    main()
