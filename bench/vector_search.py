"""Vector search on the real schema: HNSW build time, top-10 latency and recall@10 against an exact scan.

Clustered synthetic data (uniform random high-dimensional vectors have no meaningful neighbours):
unit vectors around ``--centres`` random centres, each cluster with its own spread; queries are
perturbed data points. Vectors are stored as ``halfvec`` in ``image_embeddings`` and indexed by the
same per-model partial HNSW index the tagging promotion creates; queries go through
``assets.tagging.search.VectorSearch.nearest``, the vector search the search app runs (its semantic
half) and the pipeline's ``nearest_images`` wraps, each query in its own transaction as the app
runs it. The exact top-10 is a numpy scan over the same fp16-rounded vectors, in the same run; so
is the filtered one: a tag on about ``--tag-share`` of the images, concentrated in some clusters as
real tags follow content, searched with ``hnsw.iterative_scan`` from perturbed tagged images. A
filtered index scan that comes back short of k rows is ranked exactly instead, as in the app: the
``exact`` column is the share of queries that took that fallback (or that the planner's estimate
sent straight to the exact ranking: ``SearchSettings.exact_below``).

    python bench/vector_search.py                 # 100,000 × 1152
    python bench/vector_search.py --n 500000
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psycopg
from pgvector import HalfVector
from psycopg import sql as pgsql

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assets.tagging.search import SearchFilters, SearchSettings, VectorSearch, ensure_vector_types  # noqa: E402
from assets.tagging.store import EmbeddingModel, ensure_embedding_model  # noqa: E402
from creatorlens.queries import load_queries  # noqa: E402
from resources.warehouse import apply_migrations, embedded_server, get_engine  # noqa: E402

VERSION = "bench/clustered@1"
TAG = "bench_tag"  # follows the clusters
SCATTERED = "bench_scattered"  # on random images, whatever their content


def clustered(n: int, dim: int, centres: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(n, dim) fp16 unit vectors around ``centres`` random unit centres, and each vector's cluster."""
    c = rng.standard_normal((centres, dim), dtype=np.float32)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    spread = rng.uniform(0.5, 1.5, centres).astype(np.float32) / np.sqrt(dim)  # in-cluster cos ≈ 0.3–0.8
    labels = rng.integers(0, centres, n)
    out = np.empty((n, dim), dtype=np.float16)
    for start in range(0, n, 20_000):
        lab = labels[start:start + 20_000]
        x = c[lab] + rng.standard_normal((len(lab), dim), dtype=np.float32) * spread[lab, None]
        out[start:start + len(lab)] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out, labels


def exact_top_k(data: np.ndarray, queries: np.ndarray, k: int, mask: np.ndarray | None = None) -> np.ndarray:
    """Indices of the k largest cosine similarities per query (data rows are unit; fp16 as stored)."""
    best = np.empty((len(queries), k), dtype=np.int64)
    for i in range(0, len(queries), 50):
        sims = np.zeros((min(50, len(queries) - i), len(data)), dtype=np.float32)
        for start in range(0, len(data), 50_000):
            sims[:, start:start + 50_000] = queries[i:i + 50] @ data[start:start + 50_000].astype(np.float32).T
        if mask is not None:
            sims[:, ~mask] = -np.inf
        part = np.argpartition(-sims, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sims, part, axis=1), axis=1)
        best[i:i + 50] = np.take_along_axis(part, order, axis=1)
    return best


def load(conn: psycopg.Connection, data: np.ndarray, tagged: dict[str, np.ndarray]) -> float:
    """Images, embeddings and one tag through COPY; returns seconds."""
    started = time.perf_counter()
    n = len(data)
    with conn.transaction(), conn.cursor() as cur:
        with cur.copy("COPY images (image_key, platform, post_id, username, batch_key, rank, engagement, status, "
                      "sha256, pdq_hash, pdq_quality) FROM STDIN") as copy:
            for i in range(n):
                copy.write_row((f"bench:{i}", "bench", str(i), f"user{i // 10}", "bench", i % 10 + 1, 0, "ok",
                                f"{i:064x}", f"{i:064x}", 100))
        cur.execute("INSERT INTO tag_taxonomies (taxonomy_version, name, content) VALUES ('bench', 'bench', '{}')")
        for tag, mask in tagged.items():
            cur.execute("INSERT INTO tags (name, category, exclusive, taxonomy_version) "
                        "VALUES (%s, 'bench', false, 'bench')", (tag,))
            cur.execute("INSERT INTO image_tags (image_id, tag_id, source, model_version, confidence, threshold, "
                        "taxonomy_version) SELECT i.image_id, g.tag_id, 'ai', %s, 0.9, 0.5, 'bench' "
                        "FROM images i, tags g WHERE g.name = %s AND i.image_key = ANY(%s)",
                        (VERSION, tag, [f"bench:{i}" for i in np.nonzero(mask)[0]]))
    with conn.transaction():
        ensure_vector_types(conn)
        with conn.cursor() as cur:
            cur.execute(load_queries("promote_tags.sql")["register_model"], {
                "model_version": VERSION, "model_id": "bench", "backend": "synthetic", "dim": data.shape[1],
                "scoring": "sigmoid", "index_name": "bench_hnsw", "hnsw_m": 0, "hnsw_ef_construction": 0})
            ids = dict(cur.execute("SELECT image_key, image_id FROM images WHERE batch_key = 'bench'").fetchall())
            with cur.copy("COPY image_embeddings (model_version, image_id, embedding, batch_key) "
                          "FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["text", "int8", "halfvec", "text"])
                for i in range(n):
                    copy.write_row([VERSION, ids[f"bench:{i}"], HalfVector(data[i]), "bench"])
    return time.perf_counter() - started


def build_index(conn: psycopg.Connection, dim: int, m: int, ef_construction: int, maintenance_work_mem: str = "3GB",
                maintenance_workers: int = 2) -> float:
    started = time.perf_counter()
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("UPDATE embedding_models SET hnsw_m = %s, hnsw_ef_construction = %s WHERE model_version = %s",
                    (m, ef_construction, VERSION))
        cur.execute(pgsql.SQL("SET LOCAL maintenance_work_mem = {}").format(pgsql.Literal(maintenance_work_mem)))
        cur.execute(pgsql.SQL("SET LOCAL max_parallel_maintenance_workers = {}").format(
            pgsql.Literal(maintenance_workers)))
        ensure_embedding_model(cur, EmbeddingModel(VERSION, "bench", "synthetic", dim, "sigmoid"))
    with conn.transaction():
        conn.execute("ANALYZE image_embeddings")
        conn.execute("ANALYZE image_tags")
    return time.perf_counter() - started


class CountingVectors(VectorSearch):
    """The app's vector search, counting how often it ranked the filtered images exactly."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.exact_rankings = 0

    def rank_exactly(self, *args, **kwargs):
        self.exact_rankings += 1
        return super().rank_exactly(*args, **kwargs)


def timed_queries(conn, queries, k, settings, dim: int, row_of: dict[int, int],
                  tag=None) -> tuple[list[list[int]], list[float], int]:
    """(rows found per query, ms per query, exact rankings); ``row_of``: image_id -> data row."""
    search = CountingVectors(settings)
    filters = SearchFilters(tag=tag)
    results, latencies = [], []
    for q in queries:
        started = time.perf_counter()
        with conn.transaction():
            ranked = search.nearest(conn, q, filters, VERSION, dim, k)
        latencies.append((time.perf_counter() - started) * 1000)
        results.append([row_of[image_id] for image_id, _ in ranked])
    return results, latencies, search.exact_rankings


def recall(found: list[list[int]], truth: np.ndarray, k: int) -> float:
    return float(np.mean([len(set(f[:k]) & set(t[:k])) / k for f, t in zip(found, truth, strict=True)]))


def measure(conn, name: str, queries: np.ndarray, truth: np.ndarray, k: int, settings: SearchSettings,
            dim: int, row_of: dict[int, int], tag: str | None = None) -> tuple:
    found, lat, exact = timed_queries(conn, queries, k, settings, dim, row_of, tag=tag)
    return name, settings.ef_search, settings.iterative_scan, recall(found, truth, k), pct(lat, 50), pct(lat, 95), \
        exact / len(queries)


def pct(values: list[float], p: float) -> float:
    return float(np.percentile(values, p))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=1152)
    ap.add_argument("--centres", type=int, default=2000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=128)
    ap.add_argument("--ef-search", default="40,100,200", help="comma-separated values to sweep")
    ap.add_argument("--tag-share", type=float, default=0.1)
    ap.add_argument("--exact-sql", type=int, default=20, help="queries timed as an exact scan in PostgreSQL")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--record", action="store_true",
                    help="write bench/results/vector_search.json for bench/figures.py (the README's figures table)")
    ap.add_argument("--maintenance-work-mem", default="3GB", help="maintenance_work_mem for the HNSW build")
    ap.add_argument("--maintenance-workers", type=int, default=max(1, (os.cpu_count() or 2) - 1),
                    help="max_parallel_maintenance_workers for the HNSW build (default: cores - 1, plus the leader)")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    print(f"machine: {os.cpu_count()} CPU cores, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    t = time.perf_counter()
    data, clusters = clustered(args.n, args.dim, args.centres, rng)
    picks = rng.integers(0, args.n, args.queries)
    noise = rng.standard_normal((args.queries, args.dim), dtype=np.float32) * (0.3 / np.sqrt(args.dim))
    queries = data[picks].astype(np.float32) + noise
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    # Tags follow content, as real ones do: a tag sits on half of the images of some clusters. The
    # filtered queries are perturbed tagged images (someone searching "beach" within "travel").
    tagged_clusters = rng.random(args.centres) < 2 * args.tag_share
    tagged = tagged_clusters[clusters] & (rng.random(args.n) < 0.5)
    tagged_ids = np.nonzero(tagged)[0]
    fq = data[rng.choice(tagged_ids, args.queries)].astype(np.float32) + noise
    filtered_queries = fq / np.linalg.norm(fq, axis=1, keepdims=True)
    scattered = rng.random(args.n) < args.tag_share
    print(f"data: {args.n:,} × {args.dim} clustered unit vectors ({args.centres} centres), {args.queries} queries, "
          f"{tagged.sum():,} tagged ({tagged.mean():.1%}, in {tagged_clusters.sum()} clusters) — "
          f"generated in {time.perf_counter() - t:.1f}s")

    t = time.perf_counter()
    truth = exact_top_k(data, queries, args.k)
    truth_tagged = exact_top_k(data, filtered_queries, args.k, tagged)
    truth_scattered = exact_top_k(data, queries, args.k, scattered)
    numpy_ms = (time.perf_counter() - t) * 1000 / (3 * args.queries)
    print(f"exact numpy scan (ground truth): {numpy_ms:.1f} ms/query")

    root = Path(tempfile.mkdtemp(prefix="bench-vectors-"))
    server = embedded_server(root / "pgdata")
    url = server.get_uri()
    apply_migrations(get_engine(url.replace("postgresql://", "postgresql+psycopg://"), migrate=False))
    try:
        with psycopg.connect(url) as conn:
            load_s = load(conn, data, {TAG: tagged, SCATTERED: scattered})
            print(f"load (COPY images, tags, halfvec embeddings): {load_s:.1f}s")
            build_s = build_index(conn, args.dim, args.m, args.ef_construction, args.maintenance_work_mem,
                                  args.maintenance_workers)
            settings = dict(conn.execute(
                "SELECT name, current_setting(name) FROM pg_settings WHERE name IN ('shared_buffers', "
                "'work_mem', 'effective_cache_size', 'max_worker_processes', 'max_parallel_workers')").fetchall())
            conn.commit()
            print(f"HNSW build (m={args.m}, ef_construction={args.ef_construction}, halfvec_cosine_ops, "
                  f"maintenance_work_mem {args.maintenance_work_mem}, {args.maintenance_workers} parallel maintenance "
                  f"workers + the leader): {build_s:.1f}s = {args.n / build_s:,.0f} vectors/s; load average "
                  f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
            print("server settings: " + ", ".join(f"{k} {v}" for k, v in sorted(settings.items())))
            plan = "\n".join(r[0] for r in conn.execute(
                pgsql.SQL("EXPLAIN ") + pgsql.SQL(load_queries("search.sql")["nearest_images"]).format(
                    dim=pgsql.Literal(args.dim)),
                {"query": HalfVector(queries[0]), "model_version": VERSION, "k": args.k}, prepare=False).fetchall())
            conn.commit()
            print(f"planner uses the partial HNSW index: {'bench_hnsw' in plan}")

            row_of = {image_id: int(key.split(":")[1]) for image_id, key in conn.execute(
                "SELECT image_id, image_key FROM images WHERE batch_key = 'bench'").fetchall()}
            conn.commit()
            rows = []
            at = {"dim": args.dim, "row_of": row_of}
            timed_queries(conn, queries[:20], args.k, SearchSettings(), **at)  # warm the cache
            for ef in [int(x) for x in args.ef_search.split(",")]:
                rows.append(measure(conn, "unfiltered", queries, truth, args.k, SearchSettings(ef_search=ef), **at))
                rows.append(measure(conn, "tag (follows content)", filtered_queries, truth_tagged, args.k,
                                    SearchSettings(ef_search=ef), **at, tag=TAG))
            rows.append(measure(conn, "tag (follows content)", filtered_queries, truth_tagged, args.k,
                                SearchSettings(ef_search=40, iterative_scan="off"), **at, tag=TAG))
            for mode in ("relaxed_order", "off"):
                rows.append(measure(conn, "tag (scattered at random)", queries, truth_scattered, args.k,
                                    SearchSettings(ef_search=100, iterative_scan=mode), **at, tag=SCATTERED))

            exact_lat = []
            with conn.transaction():
                conn.execute("SET LOCAL enable_indexscan = off")
                for q in queries[:args.exact_sql]:
                    started = time.perf_counter()
                    conn.execute(pgsql.SQL(load_queries("search.sql")["nearest_images"]).format(
                        dim=pgsql.Literal(args.dim)), {"query": HalfVector(q), "model_version": VERSION,
                                                       "k": args.k}, prepare=False).fetchall()
                    exact_lat.append((time.perf_counter() - started) * 1000)
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)  # 3 GB at 500,000 × 1152

    print(f"\n{'query':<28} {'ef_search':>9} {'iterative':>13} {'recall@10':>10} {'p50 ms':>8} {'p95 ms':>8} "
          f"{'exact':>7}")
    for name, ef, mode, rec, p50, p95, exact in rows:
        print(f"{name:<28} {ef:>9} {mode:>13} {rec:>10.3f} {p50:>8.2f} {p95:>8.2f} {exact:>7.0%}")
    print(f"{'exact scan in PostgreSQL':<28} {'-':>9} {'-':>13} {1.0:>10.3f} {pct(exact_lat, 50):>8.2f} "
          f"{pct(exact_lat, 95):>8.2f} {'100%':>7}")
    default = next(r for r in rows if r[0] == "unfiltered" and r[1] == SearchSettings().ef_search) \
        if any(r[0] == "unfiltered" and r[1] == SearchSettings().ef_search for r in rows) else rows[0]
    print(f"\nHNSW p50 speed-up over the exact PostgreSQL scan (unfiltered, ef_search={default[1]}): "
          f"{statistics.median(exact_lat) / default[4]:.0f}×")
    print(f"'exact': share of queries ranked exactly, without the index (the planner estimated fewer than "
          f"{SearchSettings().exact_below:,} tagged images, or the index scan came back short of k: e.g. a filter "
          "without iterative scan); recall on the scattered tag is against an exact scan whose far neighbours are "
          "near-ties (cos ≈ 0), so it understates what a user sees.")
    if args.record:
        from _record import record

        def row(name: str, ef: int, mode: str = "relaxed_order"):
            return next((r for r in rows if r[0] == name and r[1] == ef and r[2] == mode), None)

        tagged_row = row("tag (follows content)", default[1])
        speedup = statistics.median(exact_lat) / default[4]
        record("vector_search", [
            (f"vector search, {args.n:,} × {args.dim} halfvec, HNSW m={args.m} ef_construction={args.ef_construction}",
             f"build {build_s:.0f} s ({args.n / build_s:,.0f} vectors/s, {args.maintenance_workers} parallel maintenance "
             f"worker(s) + the leader, maintenance_work_mem {args.maintenance_work_mem}); top-{args.k} at ef_search "
             f"{default[1]}: recall@{args.k} {default[3]:.3f}, p50 {default[4]:.1f} ms, p95 {default[5]:.1f} ms"
             + (f"; with a content tag ({tagged.mean():.0%} of images, iterative scan): recall {tagged_row[3]:.3f}, "
                f"p95 {tagged_row[5]:.1f} ms" if tagged_row else ""),
             f"exact scan in PostgreSQL: p50 {pct(exact_lat, 50):.0f} ms (HNSW {speedup:.0f}× faster); exact numpy "
             f"scan {numpy_ms:.0f} ms/query; server settings: "
             + ", ".join(f"{k} {v}" for k, v in sorted(settings.items()))),
        ])


if __name__ == "__main__":
    main()
