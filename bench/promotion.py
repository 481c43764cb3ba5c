"""Promotion throughput: COPY into staging + INSERT … ON CONFLICT versus row-by-row upserts.

Both paths write the same synthetic image rows into a fresh embedded PostgreSQL (or
``--database-url``) in the same run, so the ratio is measured on one machine at one moment.

    python bench/promotion.py --rows 100000
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
from psycopg import sql as pgsql

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assets.common.promotion import IMAGE_COLUMNS, promote  # noqa: E402
from resources.warehouse import apply_migrations, embedded_server, get_engine  # noqa: E402

EMPTY = {
    "creators": pd.DataFrame(columns=["platform", "username"]),
    "posts": pd.DataFrame(columns=["platform", "post_id"]),
    "duplicates": pd.DataFrame(columns=["image_key_a", "image_key_b", "distance", "kind"]),
}

ROW_UPSERT = """
INSERT INTO images (image_key, platform, post_id, username, batch_key, rank, engagement, source_uri, status,
                    error_reason, error, sha256, blob_key, thumb_key, byte_size, width, height, source_format,
                    source_mode, frames, exif_rotated, pdq_hash, pdq_quality, processed_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (image_key) DO UPDATE SET status = EXCLUDED.status, sha256 = EXCLUDED.sha256,
    pdq_hash = EXCLUDED.pdq_hash, pdq_quality = EXCLUDED.pdq_quality, updated_at = now()
"""


def synthetic_images(n: int, prefix: str, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    hashes = [bytes(rng.integers(0, 256, 32, dtype=np.uint8)).hex() for _ in range(n)]
    now = datetime.now(UTC)
    return pd.DataFrame(
        {
            "image_key": [f"instagram:{prefix}{i}" for i in range(n)],
            "platform": "instagram",
            "post_id": [f"{prefix}{i}" for i in range(n)],
            "username": [f"user{i // 10}" for i in range(n)],
            "rank": (np.arange(n) % 10 + 1).astype("int64"),
            "engagement": rng.integers(0, 100_000, n),
            "source_uri": [f"https://cdn.example/{prefix}{i}.jpg" for i in range(n)],
            "status": "ok",
            "error_reason": None,
            "error": None,
            "sha256": hashes,
            "blob_key": [f"originals/{h[:2]}/{h}.jpg" for h in hashes],
            "thumb_key": [f"thumbnails/{h[:2]}/{h}.jpg" for h in hashes],
            "byte_size": rng.integers(50_000, 500_000, n),
            "width": 1080,
            "height": 1350,
            "source_format": "JPEG",
            "source_mode": "RGB",
            "frames": 1,
            "exif_rotated": False,
            "pdq_hash": hashes,
            "pdq_quality": rng.integers(50, 100, n),
            "processed_at": now,
        }
    )


def bench_copy(url: str, df: pd.DataFrame, batch_key: str) -> float:
    with psycopg.connect(url) as conn:
        started = time.perf_counter()
        promote(conn, batch_key, images=df, run_id=f"bench-{batch_key}", code_version="bench", **EMPTY)
        return time.perf_counter() - started


def bench_rows(url: str, df: pd.DataFrame, batch_key: str) -> float:
    rows = [tuple(None if pd.isna(v) else v for v in r) for r in df[list(IMAGE_COLUMNS)].itertuples(index=False)]
    with psycopg.connect(url) as conn:
        started = time.perf_counter()
        with conn.transaction(), conn.cursor() as cur:
            for r in rows:
                cur.execute(ROW_UPSERT, (*r[:4], batch_key, *r[4:]))
        return time.perf_counter() - started


def bench_rows_autocommit(url: str, df: pd.DataFrame, batch_key: str) -> float:
    """The naive loop: one statement and one commit per row (what an ORM save() loop does)."""
    rows = [tuple(None if pd.isna(v) else v for v in r) for r in df[list(IMAGE_COLUMNS)].itertuples(index=False)]
    with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cur:
        started = time.perf_counter()
        for r in rows:
            cur.execute(ROW_UPSERT, (*r[:4], batch_key, *r[4:]))
        return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000, help="image rows per path (default 100000)")
    ap.add_argument("--repeats", type=int, default=1, help="repeat each path and report the median")
    ap.add_argument("--autocommit-rows", type=int, default=10_000,
                    help="rows for the one-commit-per-row path (slow; rows/s is what is compared)")
    ap.add_argument("--database-url", help="use this PostgreSQL instead of a temporary embedded one")
    ap.add_argument("--record", action="store_true",
                    help="write bench/results/promotion.json for bench/figures.py (the README's figures table)")
    args = ap.parse_args()

    tmp = None
    if args.database_url:
        url = args.database_url.replace("+psycopg", "")
    else:
        tmp = Path(tempfile.mkdtemp(prefix="creatorlens-bench-"))
        server = embedded_server(tmp / "pgdata")
        with psycopg.connect(server.get_uri(), autocommit=True) as conn:
            conn.execute(pgsql.SQL("CREATE DATABASE bench"))
        url = server.get_uri(database="bench")
    apply_migrations(get_engine(url))

    copy_times, row_times, upd_times = [], [], []
    for rep in range(args.repeats):
        copy_times.append(bench_copy(url, synthetic_images(args.rows, f"c{rep}-", seed=rep), f"batch-c{rep}"))
        row_times.append(bench_rows(url, synthetic_images(args.rows, f"r{rep}-", seed=rep), f"batch-r{rep}"))
        # Re-promoting an unchanged batch: the idempotent rerun path.
        upd_times.append(bench_copy(url, synthetic_images(args.rows, f"c{rep}-", seed=rep), f"batch-c{rep}"))

    copy_s, row_s, upd_s = (statistics.median(t) for t in (copy_times, row_times, upd_times))
    n = args.rows
    m = args.autocommit_rows
    auto_s = bench_rows_autocommit(url, synthetic_images(m, "a-", seed=99), "batch-a")
    row_rate = n / row_s
    auto_rate = m / auto_s
    print(f"promotion benchmark: {n:,} image rows per path (one-commit-per-row: {m:,}), median of {args.repeats}; "
          f"{os.cpu_count()} CPU cores, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'path':<44}{'seconds':>9}{'rows/s':>11}{'vs rows, 1 txn':>16}{'vs rows, autocommit':>21}")
    for name, rows_, secs in (
        ("COPY + INSERT … ON CONFLICT (new rows)", n, copy_s),
        ("COPY + upsert, unchanged rerun", n, upd_s),
        ("row-by-row upsert, one transaction", n, row_s),
        ("row-by-row upsert, commit per row", m, auto_s),
    ):
        rate = rows_ / secs
        print(f"{name:<44}{secs:>9.2f}{rate:>11,.0f}{rate / row_rate:>15.1f}x{rate / auto_rate:>20.1f}x")
    if tmp:
        server.cleanup()
    if args.record:
        from _record import record

        baseline = (f"row-by-row upserts in one transaction: {row_rate:,.0f} rows/s; one commit per row "
                    f"({m:,} rows): {auto_rate:,.0f} rows/s")
        record("promotion", [
            (f"promotion, {n:,} new image rows (a batch's first promotion: COPY straight into images)",
             f"{n / copy_s:,.0f} rows/s ({copy_s:.2f} s), {n / copy_s / row_rate:.1f}× row by row", baseline),
            (f"promotion, the same {n:,} rows re-promoted unchanged (staged COPY + upsert)",
             f"{n / upd_s:,.0f} rows/s ({upd_s:.2f} s), {n / upd_s / row_rate:.1f}× row by row", baseline),
        ], note=f"median of {args.repeats} repeats per path")


if __name__ == "__main__":
    main()
