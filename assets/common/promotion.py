"""Promote one creator batch into the warehouse in a single transaction.

COPY every frame into a temporary staging table, then ``INSERT … ON CONFLICT`` on the natural
keys (rows that did not change are left alone), then drop rows of this batch that the new run
no longer produced. Either all of a batch lands or none of it does.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import psycopg

from creatorlens.queries import load_queries

CREATOR_COLUMNS = (
    "platform", "username", "full_name", "bio", "category", "country",
    "followers", "is_business", "is_verified", "sources",
)
POST_COLUMNS = (
    "platform", "post_id", "username", "shortcode", "taken_at", "caption",
    "likes", "comments", "media_url", "is_video",
)
IMAGE_COLUMNS = (
    "image_key", "platform", "post_id", "username", "rank", "engagement", "source_uri", "status",
    "error_reason", "error", "sha256", "blob_key", "thumb_key", "byte_size", "width", "height",
    "source_format", "source_mode", "frames", "exif_rotated", "pdq_hash", "pdq_quality", "processed_at",
)
DUPLICATE_COLUMNS = ("image_key_a", "image_key_b", "distance", "kind")

# (result name, promote() argument, staging table, columns, statement suffix in promote_batch.sql)
_TABLES = (
    ("creators", "creators", "stage_creators", CREATOR_COLUMNS, "creators"),
    ("posts", "posts", "stage_posts", POST_COLUMNS, "posts"),
    ("images", "images", "stage_images", IMAGE_COLUMNS, "images"),
    ("image_duplicates", "duplicates", "stage_duplicates", DUPLICATE_COLUMNS, "duplicates"),
)
_ARRAY_TYPES = (list, tuple, np.ndarray)


@dataclass
class PromotionResult:
    batch_key: str
    staged: dict[str, int] = field(default_factory=dict)
    written: dict[str, int] = field(default_factory=dict)
    deleted: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def rows_per_second(self) -> float:
        total = sum(self.staged.values())
        return total / self.seconds if self.seconds > 0 else math.inf


def _plain(value: Any) -> Any:
    """Array cells (Parquet round-trips lists as numpy arrays) become lists of plain values."""
    if isinstance(value, _ARRAY_TYPES):
        return [v.item() if isinstance(v, np.generic) else v for v in value]
    return value


def frame_rows(df: pd.DataFrame, columns: Sequence[str]) -> Iterable[tuple[Any, ...]]:
    """Rows of ``df`` ordered as ``columns`` (a missing column is all-NULL), missing values as None.

    Conversion is vectorised per column: ``astype(object)`` yields plain Python ints/bools/
    Timestamps and ``where(notna)`` turns NaN/NaT/NA into None, so COPY sees adaptable values.
    """
    out = pd.DataFrame(index=df.index)
    for col in columns:
        if col not in df.columns:
            out[col] = None
            continue
        series = df[col]
        first = series.first_valid_index() if series.dtype == object else None
        if first is not None and isinstance(series[first], _ARRAY_TYPES):  # an array column (e.g. sources)
            out[col] = series.map(lambda v: _plain(v) if isinstance(v, _ARRAY_TYPES) else None)
        else:
            obj = series.astype(object)
            out[col] = obj.where(series.notna(), None)
    return out.itertuples(index=False, name=None)


def copy_rows(cur: psycopg.Cursor, table: str, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> int:
    """COPY rows into a staging table (identifiers are fixed constants of this module)."""
    n = 0
    cols = ", ".join(columns)
    with cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:  # noqa: S608 - constant identifiers
        for row in rows:
            copy.write_row(row)
            n += 1
    return n


def promote(
    conn: psycopg.Connection,
    batch_key: str,
    *,
    creators: pd.DataFrame,
    posts: pd.DataFrame,
    images: pd.DataFrame,
    duplicates: pd.DataFrame,
    run_id: str,
    code_version: str,
) -> PromotionResult:
    """Write one batch atomically; returns staged/written/deleted counts per table."""
    q = load_queries("promote_batch.sql")
    result = PromotionResult(batch_key)
    params = {"batch_key": batch_key}
    started = time.perf_counter()
    frames = {"creators": creators, "posts": posts, "images": images, "duplicates": duplicates}
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(q["lock_batch"], params)
        cur.execute(q["create_stage"])
        for name, arg, table, columns, _ in _TABLES:
            result.staged[name] = copy_rows(cur, table, columns, frame_rows(frames[arg], columns))
        for name, _, _, _, suffix in _TABLES:
            cur.execute(q[f"upsert_{suffix}"], params)
            result.written[name] = cur.rowcount
            if f"delete_stale_{suffix}" in q:
                cur.execute(q[f"delete_stale_{suffix}"], params)
                result.deleted[name] = cur.rowcount
        counts = {"staged": result.staged, "written": result.written, "deleted": result.deleted}
        cur.execute(
            q["record_promotion"],
            {**params, "run_id": run_id, "code_version": code_version, "counts": json.dumps(counts)},
        )
    result.seconds = time.perf_counter() - started
    return result
