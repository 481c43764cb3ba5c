"""Hybrid image search: keyword (PostgreSQL full text) and semantic (pgvector HNSW), fused by RRF.

One query string runs two searches at once, each on its own pooled connection:

* **keyword** — ``websearch_to_tsquery('simple', q)`` over OCR text, captions, tag names, bios and
  LLM-written profiles (persona and topics); an image's score sums ``ts_rank`` over the fields it
  matched (see ``sql/queries/app_search.sql``);
* **semantic** — the query text is embedded by the image-embedding backend (SigLIP / OpenCLIP text
  tower) and the nearest image vectors of that model version are read through its HNSW index;
  when the filters leave few images (the planner's estimate, ``SearchTuning.exact_below``) or the
  filtered index scan gives up short of the limit, the images that pass are ranked exactly instead.

The two rankings are fused with reciprocal rank fusion, ``score = Σ 1 / (k + rank)`` with
``k = 60`` (Cormack et al., 2009): no score calibration between the two, and an image found by both
rises. Filters (creator category, tag, date range, hide duplicates) apply inside both searches: the
semantic half still returns its full ``limit``; the keyword half filters its best candidates per
field (``SearchTuning.per_field``), so a narrow filter can leave it short. Image → image search uses the semantic half alone, with the
vector of a stored image or of an uploaded photo.

Timings are reported per part (``embed_ms`` — the query embedding, on the model's device — is kept
apart from the database time, as the benchmark does).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

import numpy as np
import psycopg
from pgvector import HalfVector
from psycopg import sql as pgsql
from sqlalchemy import Engine

from creatorlens.queries import like_escape, load_queries
from assets.tagging.search import ensure_vector_types

QUERIES = "app_search.sql"
SHARED = "search.sql"  # assets.tagging.search: model dims, tag ids, stored embeddings
RRF_K = 60
Mode = Literal["hybrid", "keyword", "semantic"]
MODES: tuple[str, ...] = ("hybrid", "keyword", "semantic")


class SearchUnavailable(RuntimeError):
    """Semantic search was asked for but no embedder or no embeddings exist (the message says which)."""


class UnknownTag(LookupError):
    pass


@dataclass(frozen=True)
class SearchFilters:
    category: str | None = None  # the creator's category (case-insensitive)
    tag: str | None = None  # the image carries this tag (model or reviewer; a reviewer's "no" wins)
    date_from: datetime | None = None  # post taken at >= date_from
    date_to: datetime | None = None  # post taken at < date_to
    hide_duplicates: bool = False  # keep one image of each duplicate pair (the smaller key)


@dataclass
class SearchHit:
    image_key: str
    platform: str
    username: str
    thumb_key: str | None
    taken_at: datetime | None
    score: float
    keyword_rank: int | None = None
    semantic_rank: int | None = None
    distance: float | None = None
    fields: list[str] = field(default_factory=list)


@dataclass
class SearchResult:
    query: str
    mode: str
    model_version: str | None
    hits: list[SearchHit]
    timings_ms: dict[str, float]
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SearchTuning:
    candidates: int = 100  # depth of each ranking before fusion
    per_field: int = 500  # keyword candidates per field before summing
    ef_search: int = 100  # HNSW candidate list (>= candidates)
    # Cap on what a filtered iterative scan visits before the exact ranking takes over. Lower is
    # faster even when the scan succeeds (bench/search.py, 100k images: a 90-day filter p50 13 ms at
    # 2,000 vs 33 ms at 20,000).
    max_scan_tuples: int = 2_000
    exact_below: int = 2_000  # filters estimated to leave fewer images: rank those exactly, no index


def rrf(rankings: Sequence[Sequence[int]], k: int = RRF_K) -> dict[int, float]:
    """Reciprocal rank fusion of ranked id lists (rank 1 = best)."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return scores


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 3)


class HybridSearch:
    """Search over one warehouse; ``embedder`` (optional) embeds query text and uploaded photos."""

    def __init__(self, engine: Engine, embedder: Any = None, *, tuning: SearchTuning = SearchTuning(),
                 executor: ThreadPoolExecutor | None = None) -> None:
        self.engine, self.embedder, self.tuning = engine, embedder, tuning
        self.q = {**load_queries(SHARED), **load_queries(QUERIES)}
        self._executor = executor or ThreadPoolExecutor(max_workers=4, thread_name_prefix="search")

    # ---- plumbing -------------------------------------------------------------------------
    def _run(self, work: Callable[[psycopg.Connection], Any]) -> Any:
        """``work`` on a pooled connection, in its own read transaction."""
        with self.engine.connect() as sa_conn:
            conn = sa_conn.connection.driver_connection
            try:
                return work(conn)
            finally:
                sa_conn.rollback()

    def _params(self, conn: psycopg.Connection, filters: SearchFilters, model_version: str | None) -> dict:
        tag_id = None
        if filters.tag is not None:
            row = conn.execute(self.q["tag_id"], {"tag": filters.tag}).fetchone()
            if row is None:
                raise UnknownTag(f"unknown tag {filters.tag!r}")
            tag_id = row[0]
        like = None if filters.category is None else like_escape(filters.category)
        return {"category": filters.category, "category_like": like, "tag_id": tag_id,
                "model_version": model_version or "",
                "date_from": filters.date_from, "date_to": filters.date_to,
                "hide_duplicates": filters.hide_duplicates}

    def _statement(self, name: str, dim: int | None = None, filters: SearchFilters | None = None) -> pgsql.Composed:
        """``name`` with its filters: the per-row ``image_filters``, or (``filters`` given) the
        ``filter_*`` fragments of the filters in use, ANDed (see ``sql/queries/app_search.sql``)."""
        if filters is None:
            predicate = pgsql.SQL(self.q["image_filters"])
        else:
            names = ["filter_ok"]
            names += ["filter_category"] if filters.category is not None else []
            names += ["filter_tag"] if filters.tag is not None else []
            names += ["filter_dates"] if filters.date_from is not None or filters.date_to is not None else []
            names += ["filter_hide_duplicates"] if filters.hide_duplicates else []
            predicate = pgsql.SQL("\n  AND ").join(pgsql.SQL(f"({self.q[n]})") for n in names)
        parts: dict[str, Any] = {"filters": predicate}
        if dim is not None:
            parts["dim"] = pgsql.Literal(dim)
        return pgsql.SQL(self.q[name]).format(**parts)

    def model(self, model_version: str | None = None) -> tuple[str, int] | None:
        """(version, dim) to search: the embedder's, the one asked for, else the newest stored."""
        wanted = model_version or (self.embedder.version if self.embedder is not None else None)

        def look(conn: psycopg.Connection):
            if wanted is None:
                return conn.execute(self.q["current_model"]).fetchone()
            row = conn.execute(self.q["model_dim"], {"model_version": wanted}).fetchone()
            return (wanted, row[0]) if row else None

        found = self._run(look)
        return (found[0], int(found[1])) if found else None

    # ---- the two halves ---------------------------------------------------------------------
    def keyword(self, query: str, filters: SearchFilters, model_version: str | None,
                limit: int | None = None) -> tuple[list[tuple[int, float, list[str]]], float]:
        start = time.perf_counter()

        def work(conn: psycopg.Connection):
            params = self._params(conn, filters, model_version)
            params.update(query=query, k=limit or self.tuning.candidates, per_field=self.tuning.per_field)
            return conn.execute(self._statement("keyword"), params, prepare=False).fetchall()

        rows = self._run(work)
        return [(r[0], float(r[1]), list(r[2])) for r in rows], _ms(start)

    def nearest(self, vector: np.ndarray, filters: SearchFilters, model_version: str, dim: int,
                limit: int | None = None) -> tuple[list[tuple[int, float]], float]:
        vec = np.asarray(vector, dtype=np.float32).ravel()
        if vec.shape[0] != dim:
            raise ValueError(f"query vector has {vec.shape[0]} dims, model version {model_version!r} has {dim}")
        k = limit or self.tuning.candidates
        start = time.perf_counter()

        def work(conn: psycopg.Connection):
            ensure_vector_types(conn)
            params = self._params(conn, filters, model_version)
            params.update(vector=HalfVector(vec), k=k)
            conn.execute(self.q["search_settings"], {"ef_search": str(max(self.tuning.ef_search, k)),
                                                     "max_scan_tuples": str(self.tuning.max_scan_tuples)})
            # Few images pass the filters (by the planner's estimate): ranking them all is cheaper
            # than an index scan that would have to visit many more to find k of them.
            exact = filters != SearchFilters(hide_duplicates=filters.hide_duplicates) and \
                self._estimate(conn, filters, params) <= self.tuning.exact_below
            rows = [] if exact else conn.execute(self._statement("semantic", dim), params, prepare=False).fetchall()
            if len(rows) < k:
                # Chosen above, or the index scan gave up (max_scan_tuples) before k images passed
                # the filters, or fewer than k exist: rank every image that passes them, exactly.
                rows = conn.execute(self._statement("semantic_exact", dim, filters), params,
                                    prepare=False).fetchall()
            return rows

        rows = self._run(work)
        return [(r[0], float(r[1])) for r in rows], _ms(start)

    def _estimate(self, conn: psycopg.Connection, filters: SearchFilters, params: dict) -> float:
        """The planner's estimate of the images that pass ``filters`` (an EXPLAIN, nothing is read)."""
        plan = conn.execute(pgsql.SQL("EXPLAIN (FORMAT JSON) ") + self._statement("filtered_images", None, filters),
                            params, prepare=False).fetchone()[0]
        return float(plan[0]["Plan"]["Plan Rows"])

    def _describe(self, ids: Sequence[int]) -> dict[int, tuple]:
        if not ids:
            return {}
        rows = self._run(lambda conn: conn.execute(self.q["describe"], {"ids": list(ids)}).fetchall())
        return {r[0]: r[1:] for r in rows}

    # ---- public -----------------------------------------------------------------------------
    def search(self, query: str, *, mode: Mode = "hybrid", filters: SearchFilters = SearchFilters(),
               limit: int = 50, model_version: str | None = None) -> SearchResult:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        query = query.strip()
        if not query:
            raise ValueError("an empty query finds nothing: type a word or a phrase")
        started = time.perf_counter()
        timings: dict[str, float] = {}
        notes: list[str] = []
        model = self.model(model_version)
        version = model[0] if model else model_version
        semantic = mode in ("hybrid", "semantic")
        if semantic and (self.embedder is None or model is None):
            why = ("no image embedder is loaded (fetch the weights once: `creatorlens models pull image_embedder`)"
                   if self.embedder is None else f"no image embeddings for {self.embedder.version!r} yet")
            if mode == "semantic":
                raise SearchUnavailable(f"semantic search is unavailable: {why}")
            notes.append(f"keyword only: {why}")
            semantic = False
        keyword_job: Future | None = None
        if mode in ("hybrid", "keyword"):
            keyword_job = self._executor.submit(self.keyword, query, filters, version)
        semantic_rows: list[tuple[int, float]] = []
        if semantic:
            start = time.perf_counter()
            vector = self.embedder.embed_texts([query])[0]
            timings["embed_ms"] = _ms(start)
            semantic_rows, timings["semantic_ms"] = self.nearest(vector, filters, model[0], model[1])
        keyword_rows: list[tuple[int, float, list[str]]] = []
        if keyword_job is not None:
            keyword_rows, timings["keyword_ms"] = keyword_job.result()
        result = self._fuse(query, mode, version, keyword_rows, semantic_rows, limit, timings)
        result.notes = notes
        timings["total_ms"] = _ms(started)
        timings["search_ms"] = round(timings["total_ms"] - timings.get("embed_ms", 0.0), 3)
        return result

    def similar(self, *, image_key: str | None = None, image: np.ndarray | None = None,
                filters: SearchFilters = SearchFilters(), limit: int = 50,
                model_version: str | None = None) -> SearchResult:
        """Image → image: nearest to a stored image's vector or to a new photo (RGB array)."""
        if (image_key is None) == (image is None):
            raise ValueError("give exactly one of image_key or image")
        timings: dict[str, float] = {}
        model = self.model(model_version)
        if model is None:
            raise SearchUnavailable("no image embeddings to search (the embedding stage has not run with weights)")
        version, dim = model
        if image is not None:
            if self.embedder is None or self.embedder.version != version:
                raise SearchUnavailable("searching by an uploaded photo needs the image embedder of "
                                        f"{version!r} (`creatorlens models pull image_embedder`)")
            start = time.perf_counter()
            vector = self.embedder.embed_images([image])[0]
            timings["embed_ms"] = _ms(start)
        else:
            def stored(conn: psycopg.Connection):
                ensure_vector_types(conn)
                return conn.execute(self.q["stored_embedding"],
                                    {"image_key": image_key, "model_version": version}).fetchone()

            row = self._run(stored)
            if row is None:
                raise LookupError(f"image {image_key!r} has no embedding for model version {version!r}")
            vector = row[0].to_numpy()
        rows, timings["semantic_ms"] = self.nearest(vector, filters, version, dim, limit + 1)
        result = self._fuse(image_key or "(uploaded photo)", "semantic", version, [], rows, limit + 1, timings)
        result.hits = [h for h in result.hits if h.image_key != image_key][:limit]
        return result

    def _fuse(self, query: str, mode: str, version: str | None, keyword_rows, semantic_rows, limit: int,
              timings: dict[str, float]) -> SearchResult:
        start = time.perf_counter()
        keyword_ids = [r[0] for r in keyword_rows]
        semantic_ids = [r[0] for r in semantic_rows]
        scores = rrf([ranking for ranking in (keyword_ids, semantic_ids) if ranking])
        order = sorted(scores, key=lambda i: (-scores[i], i))[:limit]
        kw_rank = {image_id: n for n, image_id in enumerate(keyword_ids, start=1)}
        kw_fields = {r[0]: r[2] for r in keyword_rows}
        sem_rank = {image_id: n for n, image_id in enumerate(semantic_ids, start=1)}
        distance = dict(semantic_rows)
        described = self._describe(order)
        hits = []
        for image_id in order:
            if image_id not in described:
                continue  # deleted between the ranking and now
            image_key, platform, username, thumb_key, taken_at = described[image_id]
            hits.append(SearchHit(image_key, platform, username, thumb_key, taken_at, round(scores[image_id], 6),
                                  kw_rank.get(image_id), sem_rank.get(image_id), distance.get(image_id),
                                  kw_fields.get(image_id, [])))
        timings["fuse_ms"] = _ms(start)
        return SearchResult(query, mode, version, hits, timings)
