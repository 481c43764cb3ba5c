"""Promote one creator batch into the warehouse in a single transaction.

COPY every frame into a temporary staging table, then ``INSERT … ON CONFLICT`` on the natural
keys (rows that did not change are left alone), then drop rows of this batch that the new run
no longer produced. A batch's first promotion COPYs its images (the big table) straight into
``images`` instead (:func:`_promote_images`). Either all of a batch lands or none of it does.
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
    "following", "post_count", "external_url", "is_private",
)
POST_COLUMNS = (
    "platform", "post_id", "username", "shortcode", "taken_at", "caption",
    "likes", "comments", "media_url", "is_video",
    "video_url", "video_duration", "view_count", "play_count",
)
IMAGE_COLUMNS = (
    "image_key", "platform", "post_id", "username", "rank", "engagement", "source_uri", "status",
    "error_reason", "error", "sha256", "blob_key", "thumb_key", "byte_size", "width", "height",
    "source_format", "source_mode", "frames", "exif_rotated", "pdq_hash", "pdq_quality", "processed_at",
)
# images' copies of the search filters (sql/016_search_facets.sql); is_duplicate comes from its trigger
FACET_COLUMNS = ("creator_category", "taken_at")
DUPLICATE_COLUMNS = ("image_key_a", "image_key_b", "distance", "kind", "transform")

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


def _copy_text_column(series: pd.Series | None, n: int):
    """One column as COPY text cells (pyarrow, vectorised): NULL is ``\\N``, text escaped as COPY's text format
    wants (backslash, tab, newline, carriage return). None when the column needs the per-row path."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if series is None:
        return pa.array([r"\N"] * n, pa.large_string())
    try:
        arr = pa.array(series, from_pandas=True)  # NaN/NaT/None become nulls, as frame_rows makes them None
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None  # mixed objects: psycopg's adapters decide, row by row
    t = arr.type
    if pa.types.is_null(t):
        return pa.array([r"\N"] * n, pa.large_string())
    if pa.types.is_timestamp(t):
        arr = pc.cast(arr, pa.timestamp("us"), safe=False)  # PostgreSQL keeps microseconds
        if t.tz is not None:  # arrow holds UTC: its wall clock + "+00" is the instant (70x faster than tz formatting)
            arr = pc.binary_join_element_wise(pc.cast(arr, pa.large_string()), pa.scalar("+00", pa.large_string()),
                                              pa.scalar("", pa.large_string()))
    elif pa.types.is_string(t) or pa.types.is_large_string(t):
        if pc.any(pc.match_substring_regex(arr, r"[\\\t\n\r]")).as_py():  # usually nothing to escape
            for raw, escaped in (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r")):
                arr = pc.replace_substring(arr, raw, escaped)
    elif not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)):
        return None  # arrays, bytes, dicts...: the per-row path
    return pc.fill_null(pc.cast(arr, pa.large_string()), r"\N")


def _text_cells(df: pd.DataFrame, columns: Sequence[str]) -> list | None:
    """``df``'s ``columns`` as COPY text cells (pyarrow arrays), or None when one needs the per-row path."""
    cells = []
    for col in columns:
        cell = _copy_text_column(df[col] if col in df.columns else None, len(df))
        if cell is None:
            return None
        cells.append(cell)
    return cells


def _text_lines(cells: Sequence) -> Any:
    """One COPY text line per row (a pyarrow large_string array, each line ending in a newline)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    tab, empty, newline = (pa.scalar(v, pa.large_string()) for v in ("\t", "", "\n"))
    return pc.binary_join_element_wise(pc.binary_join_element_wise(*cells, tab), empty, newline)


def _payload(lines: Any) -> memoryview:
    """The lines as one buffer, as they lie in the arrow array (no Python string per row)."""
    if len(lines) == 0:
        return memoryview(b"")
    if hasattr(lines, "combine_chunks"):  # a column pandas holds in arrow (a merge can give one) makes the lines chunked
        lines = lines.combine_chunks()
    _, offsets, data = lines.buffers()
    bounds = np.frombuffer(offsets, dtype=np.int64)[lines.offset:lines.offset + len(lines) + 1]
    return memoryview(data)[int(bounds[0]):int(bounds[-1])]


COPY_CHUNK_ROWS = 10_000  # rows built and sent at a time by _copy_frame_streamed (about 4.5 MB of images)


def _copy_frame_streamed(cur: psycopg.Cursor, table: str, columns: Sequence[str], df: pd.DataFrame,
                         constants: dict[str, str]) -> int:
    """COPY ``df``, built and sent ``COPY_CHUNK_ROWS`` at a time; the rows it sent.

    Writes go through psycopg's ``QueuedLibpqWriter`` (a thread sends while this one builds the
    next chunk in pyarrow, which releases the GIL), so the server parses chunk k while chunk k + 1
    is built: on two cores the client's ~3 µs a row mostly hides behind the server's work. A chunk
    whose cells the vectorised path cannot write (arrays such as ``creators.sources``, mixed objects)
    goes row by row (``write_row``, psycopg's adapters) in the same COPY: both give the same rows.
    ``constants`` are columns with one value for every row (the batch key), written first.
    """
    from psycopg.copy import QueuedLibpqWriter

    chunk_rows = COPY_CHUNK_ROWS
    cols = ", ".join([*constants, *columns])
    with cur.copy(f"COPY {table} ({cols}) FROM STDIN", writer=QueuedLibpqWriter(cur)) as copy:  # noqa: S608
        for start in range(0, len(df), chunk_rows):
            part = df.iloc[start:start + chunk_rows]
            cells = _text_cells(part, columns)
            if cells is None:
                for row in frame_rows(part.assign(**constants), [*constants, *columns]):
                    copy.write_row(row)
                continue
            constant_cells = [_constant_cell(v, len(part)) for v in constants.values()]
            copy.write(bytes(_payload(_text_lines([*constant_cells, *cells]))))
    return len(df)


def copy_frame(cur: psycopg.Cursor, table: str, columns: Sequence[str], df: pd.DataFrame) -> int:
    """COPY ``df``'s ``columns`` (a missing one is all-NULL) into a staging table; the rows it writes.

    Text, numbers, booleans and timestamps are turned into COPY's text format column by column in
    pyarrow and sent in chunks (:func:`_copy_frame_streamed`): no Python object per cell
    (``frame_rows`` + ``write_row`` spent ~35 µs a row on images, more than the upsert itself).
    A chunk with other cells (arrays such as ``creators.sources``, mixed objects) goes row by row.
    """
    return _copy_frame_streamed(cur, table, columns, df, {}) if len(df) else 0


def _constant_cell(value: str, n: int) -> Any:
    return _copy_text_column(pd.Series([value] * n, dtype=object), n)


def with_facets(images: pd.DataFrame, posts: pd.DataFrame, creators: pd.DataFrame) -> pd.DataFrame:
    """``images`` with the search filters' columns (sql/016_search_facets.sql) from the batch's own
    posts and creators: ``taken_at`` of the image's post, ``creator_category`` lower-cased. What the
    frames do not say (a creator without a category here keeps the stored one) stays NULL, and
    promote_batch.sql's ``sync_image_facets`` writes it from the warehouse after the COPY."""
    out = images.drop(columns=[c for c in FACET_COLUMNS if c in images.columns])
    lower = lambda v: v.lower() if isinstance(v, str) else None  # noqa: E731
    sources = (
        (posts, ["platform", "post_id"], "taken_at", "taken_at", None),
        (creators, ["platform", "username"], "category", "creator_category", lower),
    )
    for frame, keys, column, facet, convert in sources:
        if not len(frame) or not {*keys, column} <= set(frame.columns) or not set(keys) <= set(out.columns):
            continue
        values = frame[[*keys, column]].drop_duplicates(keys, keep="last").rename(columns={column: facet})
        if convert is not None:
            values[facet] = values[facet].map(convert)
        try:
            out = out.merge(values, on=keys, how="left")
        except (ValueError, TypeError):  # keys of other types in the two frames: sync_image_facets fills it
            continue
    for facet in FACET_COLUMNS:
        if facet not in out.columns:
            out[facet] = None
    out.index = images.index
    return out


def _promote_images(cur: psycopg.Cursor, q: dict[str, str], params: dict[str, Any], frames: dict[str, pd.DataFrame],
                    result: PromotionResult) -> None:
    """The batch's images: straight into ``images`` on a batch's first promotion, else staged and upserted.

    A batch with no stored images (the usual first promotion of new creators) is COPYed straight into
    ``images`` under a savepoint: no staging table and no speculative insertion per row, about half
    the server's work (bench/promotion.py). Should one of its keys already belong to another batch,
    the unique index refuses that COPY, the savepoint rolls back and the rows take the staging path,
    which moves them. A re-promotion stages the frame and upserts (rows that did not change are left
    alone) and deletes the batch's rows the frame no longer has. Every constraint, index and the
    upsert's semantics stay as they are.
    """
    df = frames["images"]
    if len(df) and not cur.execute(q["batch_has_images"], params).fetchone()[0]:
        try:
            with cur.connection.transaction():  # a savepoint
                sent = _copy_frame_streamed(cur, "images", (*IMAGE_COLUMNS, *FACET_COLUMNS),
                                            with_facets(df, frames["posts"], frames["creators"]),
                                            {"batch_key": params["batch_key"]})
            result.staged["images"] = result.written["images"] = sent
            result.deleted["images"] = 0
            return
        except psycopg.errors.UniqueViolation:
            pass  # a key another batch holds: upsert, which moves it
    result.staged["images"] = copy_frame(cur, "stage_images", IMAGE_COLUMNS, df)
    cur.execute(q["upsert_images"], params)
    result.written["images"] = cur.rowcount
    cur.execute(q["delete_stale_images"], params)
    result.deleted["images"] = cur.rowcount


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
            if name != "images":
                result.staged[name] = copy_frame(cur, table, columns, frames[arg])
        for name, _, _, _, suffix in _TABLES:
            if name == "images":  # after posts (the images' posts exist), before duplicates (which read images)
                _promote_images(cur, q, params, frames, result)
                continue
            cur.execute(q[f"upsert_{suffix}"], params)
            result.written[name] = cur.rowcount
            if f"delete_stale_{suffix}" in q:
                cur.execute(q[f"delete_stale_{suffix}"], params)
                result.deleted[name] = cur.rowcount
        # the search filters' columns of the batch's images, now that their sources are written
        cur.execute(q["sync_image_facets"], params)
        counts = {"staged": result.staged, "written": result.written, "deleted": result.deleted}
        cur.execute(
            q["record_promotion"],
            {**params, "run_id": run_id, "code_version": code_version, "counts": json.dumps(counts)},
        )
    result.seconds = time.perf_counter() - started
    return result
