"""Hybrid image search: keyword (PostgreSQL full text) and semantic (pgvector HNSW), fused by RRF.

One query string runs two searches at once, each on its own pooled connection, taken for one query
and given back at once (a search never holds one connection while it waits for another, so any number
of concurrent searches share the pool without deadlock); a caller that holds a connection already
passes it (``conn=``) and the search runs on it, in a savepoint:

* **keyword** — ``websearch_to_tsquery('simple', q)`` over OCR text, captions, tag names, bios and
  LLM-written profiles (persona and topics); an image's score sums ``ts_rank`` over the fields it
  matched (see ``sql/queries/app_search.sql``);
* **semantic** — the query text is embedded by the image-embedding backend (SigLIP / OpenCLIP text
  tower) and the nearest image vectors of that model version are read through its HNSW index;
  when the filters leave few images (the planner's estimates: ``VectorSearch.index_budget``) or the
  filtered index scan gives up short of the limit, the images that pass are ranked exactly instead.
  This half is the pipeline's one vector search, :class:`assets.tagging.search.VectorSearch`
  (``sql/queries/search.sql``), which also composes the filters into the keyword half.

The two rankings are fused with reciprocal rank fusion, ``score = Σ 1 / (k + rank)`` with
``k = 60`` (Cormack et al., 2009): no score calibration between the two, and an image found by both
rises. Filters (creator category, tag, date range, hide duplicates) apply inside both searches: the
semantic half still returns its full ``limit``; the keyword half filters its best candidates per
field (``SearchTuning.per_field``), so a narrow filter can leave it short. Image → image search uses
the semantic half alone, with the vector of a stored image or of an uploaded photo.

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
from psycopg import sql as pgsql
from sqlalchemy import Engine

from app.deps import autocommit
from assets.tagging.search import SearchFilters, SearchSettings, UnknownTag, VectorSearch
from creatorlens.queries import load_queries

__all__ = ["MODES", "RRF_K", "HybridSearch", "SearchFilters", "SearchHit", "SearchResult", "SearchTuning",
           "SearchUnavailable", "UnknownTag", "rrf"]

QUERIES = "app_search.sql"
RRF_K = 60
Mode = Literal["hybrid", "keyword", "semantic"]
MODES: tuple[str, ...] = ("hybrid", "keyword", "semantic")


class SearchUnavailable(RuntimeError):
    """Semantic search was asked for but no embedder or no embeddings exist (the message says which)."""


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
class SearchTuning(SearchSettings):
    """The vector search's settings (``ef_search``, ``max_scan_tuples``, ``exact_below``, ...) and the
    depths of the two rankings before fusion."""

    candidates: int = 100  # depth of each ranking before fusion (the semantic half's k)
    per_field: int = 500  # keyword candidates per field before summing
    # PostgreSQL's gin_fuzzy_search_limit for the keyword half (0: off): a word in more posts than this
    # is ranked on a random subset of about this many of them, as PostgreSQL's GIN documentation
    # advises for very frequent words ("values in the thousands (e.g., 5000 - 20000) work well").
    # Rarer words are ranked on all their matches, exactly as before. bench/search.py, 500,000 posts,
    # a word in 35 % of captions: the caption ranking 117 ms -> 11.5 ms at 5,000; what the sample
    # costs in keyword recall is printed beside it (against the same search with the limit off).
    gin_fuzzy_search_limit: int = 5_000
    # a tag filter on at most this many images (the planner's estimate of its rows) is checked on the
    # keyword candidates as one hashed id set, before their images rows are read (app_search.sql
    # keyword_tagged_candidates); a more common tag, per candidate until k pass
    keyword_tag_set_below: int = 20_000


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
        self.vectors = VectorSearch(tuning)
        self.q = load_queries(QUERIES)
        self._executor = executor or ThreadPoolExecutor(max_workers=4, thread_name_prefix="search")

    # ---- plumbing -------------------------------------------------------------------------
    def _run(self, work: Callable[[psycopg.Connection], Any], conn: Any = None, *, local_settings: bool = True) -> Any:
        """``work`` in its own read transaction: on a pooled connection taken for it alone, or on the
        caller's ``conn`` (a SQLAlchemy connection), in a transaction or savepoint rolled back
        afterwards (the search's ``SET LOCAL`` settings end with it). Work that sets nothing
        (``local_settings=False``: one plain read) runs in autocommit on a connection of its own,
        without the BEGIN and ROLLBACK round trips."""
        if conn is not None:
            pg = conn.connection.driver_connection
            with pg.transaction(force_rollback=True):
                return work(pg)
        if not local_settings:
            with autocommit(self.engine) as sa_conn:
                return work(sa_conn.connection.driver_connection)
        with self.engine.connect() as sa_conn:
            pg = sa_conn.connection.driver_connection
            try:
                return work(pg)
            finally:
                sa_conn.rollback()

    def model(self, model_version: str | None = None, conn: Any = None) -> tuple[str, int] | None:
        """(version, dim) to search: the embedder's, the one asked for, else the newest stored."""
        wanted = model_version or (self.embedder.version if self.embedder is not None else None)
        return self._run(lambda pg: self.vectors.model(pg, wanted), conn, local_settings=False)

    # ---- the two halves ---------------------------------------------------------------------
    def keyword(self, query: str, filters: SearchFilters, model_version: str | None,
                limit: int | None = None) -> tuple[list[tuple[int, float, list[str]]], float]:
        start = time.perf_counter()

        def work(conn: psycopg.Connection):
            if self.tuning.gin_fuzzy_search_limit:
                conn.execute(self.q["keyword_settings"], {"limit": str(self.tuning.gin_fuzzy_search_limit)})
            params = self.vectors.params(conn, filters, model_version)
            params.update(query=query, k=limit or self.tuning.candidates, per_field=self.tuning.per_field)
            candidates: pgsql.Composable = pgsql.SQL("matches")
            if filters.tag is not None and self.vectors.tag_rows(conn, params) <= self.tuning.keyword_tag_set_below:
                candidates = pgsql.SQL(self.q["keyword_tagged_candidates"]).format(tag_set=self.vectors.tag_set())
            statement = pgsql.SQL(self.q["keyword"]).format(filters=pgsql.SQL(self.vectors.q["image_filters"]),
                                                            candidates=candidates)
            return conn.execute(statement, params, prepare=False).fetchall()

        rows = self._run(work)
        return [(r[0], float(r[1]), list(r[2])) for r in rows], _ms(start)

    def nearest(self, vector: np.ndarray, filters: SearchFilters, model_version: str, dim: int,
                limit: int | None = None, conn: Any = None) -> tuple[list[tuple[int, float]], float]:
        """The semantic half: :meth:`VectorSearch.nearest` in its own transaction, and its time."""
        k = limit or self.tuning.candidates
        start = time.perf_counter()
        rows = self._run(lambda pg: self.vectors.nearest(pg, vector, filters, model_version, dim, k), conn)
        return rows, _ms(start)

    def _describe(self, ids: Sequence[int]) -> dict[int, tuple]:
        if not ids:
            return {}
        return self._run(lambda conn: self.vectors.describe(conn, ids), local_settings=False)

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
            vector = self._run(lambda conn: self.vectors.stored_vector(conn, image_key, version))
            if vector is None:
                raise LookupError(f"image {image_key!r} has no embedding for model version {version!r}")
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
