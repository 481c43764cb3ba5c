"""Image search over pgvector: the one nearest-neighbour search, one model version at a time.

:class:`VectorSearch` ranks the images of a model version by cosine distance to a query vector,
with optional filters (creator category, tag, post dates, duplicates hidden). It is what the
search app runs (``app.search.HybridSearch``, whose keyword ranking composes the same filters),
what the functions below run, and what ``bench/search.py`` and ``bench/vector_search.py`` time::

    embedder = models.load("image_embedder")
    with warehouse.raw_connection() as conn:
        hits = search_images_by_text(conn, embedder, "a cat on a sofa", k=20, tag="pets")

Every query names a model version (by default the embedder's own); a query vector from one model
is never compared with another model's vectors. Without filters the per-version partial HNSW index
answers. With filters, filters the planner estimates to leave few images (:meth:`VectorSearch.index_budget`)
are ranked exactly, without the index; otherwise the index scan checks them per row, with
``hnsw.iterative_scan`` so it keeps going until ``k`` rows pass (up to ``max_scan_tuples``), and
falls back to the exact ranking if it still comes back short. ``hnsw.ef_search`` (recall against
latency) and the rest are set for the query's transaction only. Statements: ``sql/queries/search.sql``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import psycopg
from pgvector import HalfVector
from pgvector.psycopg import register_vector
from psycopg import sql as pgsql

from creatorlens.queries import load_queries
from gpu_ops.embeddings import ImageEmbedder

QUERIES = "search.sql"


@dataclass(frozen=True)
class SearchFilters:
    category: str | None = None  # the creator's category (case-insensitive)
    tag: str | None = None  # the image carries this tag (model or reviewer; a reviewer's "no" wins)
    date_from: datetime | None = None  # post taken at >= date_from
    date_to: datetime | None = None  # post taken at < date_to
    hide_duplicates: bool = False  # keep one image of each duplicate pair (the smaller key)


NO_FILTERS = SearchFilters()


@dataclass(frozen=True)
class SearchSettings:
    # HNSW candidate list (raised to k when smaller); higher = better recall, slower. bench/vector_search.py,
    # 500,000 × 1152: recall@10 0.947 at 40 (pgvector's default), 0.988 at 100 (p95 6.0 -> 8.3 ms).
    ef_search: int = 100
    iterative_scan: str = "relaxed_order"  # off | strict_order | relaxed_order (filtered queries)
    # Cap on what a filtered iterative scan visits before the exact ranking takes over. Lower is
    # faster even when the scan succeeds (bench/search.py, 100k images: a 90-day filter p50 13 ms at
    # 2,000 vs 33 ms at 20,000, pgvector's default).
    max_scan_tuples: int = 2_000
    # filters estimated to leave fewer images are ranked exactly, no index (larger sets: index_budget;
    # negative: the index scan first, always, with max_scan_tuples). bench/search.py, 500,000 images:
    # the exact ranking of 6,400 images takes 21 ms, where a failed probe and then the exact ranking
    # took 66 ms (a rare tag); a tag that follows the query is found by the probe in ~10 ms either way
    exact_below: int = 8_000
    # the filtered scan's budget where the filters look too selective for max_scan_tuples: a short
    # probe before the exact ranking (VectorSearch.index_budget); 0: the exact ranking at once
    probe_scan_tuples: int = 500
    # the exact ranking of a tag without a category: by the tag's id set when the other filters are
    # estimated to pass at least this share of the images, else per row (VectorSearch.rank_exactly)
    sets_share: float = 0.25


@dataclass(frozen=True)
class ImageHit:
    image_key: str
    platform: str
    username: str
    thumb_key: str | None
    distance: float  # cosine distance, 0 = same direction

    @property
    def similarity(self) -> float:
        return 1.0 - self.distance


class SearchError(LookupError):
    pass


class UnknownTag(SearchError):
    pass


def ensure_vector_types(conn: psycopg.Connection) -> None:
    """Register pgvector's types on this connection once (call inside a transaction, before cursors)."""
    if conn.adapters.types.get("halfvec") is None:
        register_vector(conn)


class VectorSearch:
    """Nearest images of one model version to a query vector, with ``settings``.

    Methods take a psycopg connection inside an open transaction (the settings are local to it).
    """

    def __init__(self, settings: SearchSettings = SearchSettings()) -> None:
        self.settings = settings
        self.q = load_queries(QUERIES)

    # ---- statements ---------------------------------------------------------------------------
    def compose(self, template: str, dim: int | None = None, filters: SearchFilters | None = None) -> pgsql.Composed:
        """``template`` (SQL text with ``{filters}``, maybe ``{dim}``) with the filters composed in:
        the per-row ``image_filters``, or (``filters`` given) the ``filter_*`` fragments of the
        filters in use, ANDed (see ``sql/queries/search.sql``)."""
        parts: dict[str, Any] = {}
        if filters is None:
            parts["filters"] = pgsql.SQL(self.q["image_filters"])
        elif "{sets}" in template:
            # the tag and category filters as id sets, intersected; the other filters in ids_category,
            # else on the nearest images' rows after the ranking (exact_sets_residual)
            sets = self.id_set_filters(filters)
            parts["sets"] = pgsql.SQL("\nINTERSECT\n").join(pgsql.SQL("({})").format(pgsql.SQL(self.q[n])) for n in sets)
            if filters.tag is not None:  # a reviewer's "no" out of the intersection (few ids, one hash)
                parts["sets"] = self.less_vetoed(parts["sets"])
            if "ids_category" in sets:  # every filter applied: the k nearest ids are the answer
                parts["ranked_limit"], parts["residual"] = pgsql.SQL("LIMIT %(k)s"), pgsql.SQL("")
            else:
                parts["ranked_limit"] = pgsql.SQL("")
                parts["residual"] = pgsql.SQL(self.q["exact_sets_residual"]).format(
                    filters=self._and([n for n in self.filter_names(filters) if n != "filter_tag"]))
        else:
            parts["filters"] = self._and(self.filter_names(filters))
        if dim is not None:
            parts["dim"] = pgsql.Literal(dim)
        return pgsql.SQL(template).format(**parts)

    @staticmethod
    def filter_names(filters: SearchFilters) -> list[str]:
        """search.sql's ``filter_*`` fragments of the filters in use."""
        names = ["filter_ok"]
        names += ["filter_category"] if filters.category is not None else []
        names += ["filter_tag"] if filters.tag is not None else []
        names += ["filter_dates"] if filters.date_from is not None or filters.date_to is not None else []
        names += ["filter_hide_duplicates"] if filters.hide_duplicates else []
        return names

    @staticmethod
    def id_set_filters(filters: SearchFilters) -> list[str]:
        """search.sql's ``ids_*`` fragments: the filters in use that are id sets read from an index
        (the tag's within the category when both are on)."""
        if filters.category is not None:
            return ["ids_category"] + (["ids_tag_category"] if filters.tag is not None else [])
        return ["ids_tag"] if filters.tag is not None else []

    def less_vetoed(self, ids: pgsql.Composable) -> pgsql.Composed:
        """The id set ``ids`` less the images a reviewer said do not carry the tag (``ids_tag_vetoed``)."""
        return pgsql.SQL("({})\nEXCEPT\n({})").format(ids, pgsql.SQL(self.q["ids_tag_vetoed"]))

    def tag_set(self) -> pgsql.Composed:
        """The images passing the tag filter as one id set: ``ids_tag`` less ``ids_tag_vetoed``."""
        return self.less_vetoed(pgsql.SQL(self.q["ids_tag"]))

    def _and(self, names: Sequence[str]) -> pgsql.Composed:
        return pgsql.SQL("\n  AND ").join(pgsql.SQL("({})").format(pgsql.SQL(self.q[n])) for n in names)

    def statement(self, name: str, dim: int | None = None, filters: SearchFilters | None = None) -> pgsql.Composed:
        """search.sql's ``name``, composed as :meth:`compose` does."""
        return self.compose(self.q[name], dim, filters)

    def params(self, conn: psycopg.Connection, filters: SearchFilters, model_version: str | None) -> dict:
        """The filters' parameters (both spellings); :class:`UnknownTag` for a tag that does not exist."""
        tag_id = None
        if filters.tag is not None:
            row = conn.execute(self.q["tag_id"], {"tag": filters.tag}).fetchone()
            if row is None:
                raise UnknownTag(f"unknown tag {filters.tag!r}")
            tag_id = row[0]
        return {"category": filters.category, "tag_id": tag_id,
                "model_version": model_version or "",
                "date_from": filters.date_from, "date_to": filters.date_to,
                "hide_duplicates": filters.hide_duplicates}

    # ---- models -------------------------------------------------------------------------------
    def model(self, conn: psycopg.Connection, model_version: str | None = None) -> tuple[str, int] | None:
        """(version, dim) of ``model_version``, or of the newest stored version; None: not stored."""
        if model_version is None:
            row = conn.execute(self.q["current_model"]).fetchone()
            return (row[0], int(row[1])) if row else None
        row = conn.execute(self.q["model_dim"], {"model_version": model_version}).fetchone()
        return (model_version, int(row[0])) if row else None

    def dim(self, conn: psycopg.Connection, model_version: str) -> int:
        """The dimension of ``model_version``; :class:`SearchError` naming the known versions if unknown."""
        found = self.model(conn, model_version)
        if found is None:
            known = [r[0] for r in conn.execute(self.q["known_models"]).fetchall()]
            raise SearchError(f"no embeddings for model version {model_version!r}; known versions: {known}")
        return found[1]

    def stored_vector(self, conn: psycopg.Connection, image_key: str, model_version: str) -> np.ndarray | None:
        ensure_vector_types(conn)
        row = conn.execute(self.q["stored_embedding"],
                           {"image_key": image_key, "model_version": model_version}).fetchone()
        return None if row is None else row[0].to_numpy()

    # ---- the ranking ----------------------------------------------------------------------------
    def nearest(self, conn: psycopg.Connection, vector: np.ndarray | Sequence[float], filters: SearchFilters,
                model_version: str, dim: int, k: int) -> list[tuple[int, float]]:
        """(image_id, cosine distance) of the ``k`` nearest images passing ``filters``, nearest first."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        vec = np.asarray(vector, dtype=np.float32).ravel()
        if vec.shape[0] != dim:
            raise ValueError(f"query vector has {vec.shape[0]} dims, model version {model_version!r} has {dim}")
        ensure_vector_types(conn)
        params = self.params(conn, filters, model_version)
        params.update(query=HalfVector(vec), k=k)
        s = self.settings
        share = 1.0  # the planner's share of images passing the filters other than the tag
        if filters == dataclasses.replace(NO_FILTERS, hide_duplicates=filters.hide_duplicates):
            budget: int | None = s.max_scan_tuples  # no filter, or only hiding duplicates: the index scan
        else:
            passing, total, share = self.estimates(conn, filters, params)
            budget = self.index_budget(passing, total, k)
        conn.execute(self.q["search_settings"], {"ef_search": str(max(s.ef_search, k)),
                                                 "iterative_scan": s.iterative_scan,
                                                 "max_scan_tuples": str(budget or s.max_scan_tuples)})
        rows: list = []
        if budget is not None:
            statement = (self.statement("nearest_images", dim) if filters == NO_FILTERS
                         else self.statement("nearest_images_filtered", dim))
            # prepare=False: a custom plan per call, so the planner matches the partial index's model_version.
            rows = conn.execute(statement, params, prepare=False).fetchall()
        if len(rows) < k:
            # Chosen above, or the index scan gave up (its budget of visited images) before k images
            # passed the filters, or fewer than k exist: rank every image that passes them, exactly.
            rows = self.rank_exactly(conn, params, filters, dim, share)
        return [(r[0], float(r[1])) for r in rows]

    def index_budget(self, passing: float, total: float, k: int) -> int | None:
        """How many images the filtered HNSW scan may visit (``hnsw.max_scan_tuples``) before the exact
        ranking takes over; None: rank exactly at once. From the planner's estimates of the images
        passing the filters and of all ok images.

        Filters estimated to leave at most ``exact_below`` images are ranked exactly. Otherwise the
        scan runs with ``max_scan_tuples``, unless it should visit more than that: about
        ``k * total / passing`` images if the filters were independent of the query. Then it runs
        as a short probe (``probe_scan_tuples``) that succeeds where the filter follows the query (a
        "beach" tag on a beach query: its images are the query's neighbours) and fails fast where it
        does not (a rare tag unrelated to the query), and the exact ranking follows. bench/search.py,
        500,000 images: an unrelated 1.3 % tag through the full budget 120 ms and recall 0.33; all
        four filters about 60 ms per failed full scan. The estimates are :meth:`estimates`', filter
        by filter: the planner's own estimate of all four filters was 4 to 7 times too high.
        """
        s = self.settings
        if s.exact_below < 0:  # negative: always the index scan first (the benchmarks' baseline, the tests)
            return s.max_scan_tuples
        if passing <= s.exact_below:
            return None
        visits = k * total / max(passing, 1.0)
        if visits <= s.max_scan_tuples:
            return s.max_scan_tuples
        return min(s.probe_scan_tuples, s.max_scan_tuples) or None  # probe_scan_tuples 0: exact at once

    def rank_exactly(self, conn: psycopg.Connection, params: dict, filters: SearchFilters, dim: int,
                     share: float = 1.0) -> list:
        """Exact distances to every image passing ``filters``, best k.

        From the intersected id sets (``nearest_images_exact_sets``) when a category filter is on, or
        a tag filter whose other filters pass at least ``sets_share`` of the images (``share``, the
        planner's estimate): the tag's images are ranked from their vectors and only the nearest are
        checked. Else from the per-row filters (``nearest_images_exact``), where the planner can check
        a narrow date range before it reads a vector (bench/search.py, 500,000 images, a tag on 6,362
        images in the last 90 days: 15 ms per row, 24 ms by the sets; in the last year: 48 ms per
        row, 22 ms by the sets)."""
        sets = filters.category is not None or (filters.tag is not None and share >= self.settings.sets_share)
        name = "nearest_images_exact_sets" if sets else "nearest_images_exact"
        return conn.execute(self.statement(name, dim, filters), params, prepare=False).fetchall()

    def estimates(self, conn: psycopg.Connection, filters: SearchFilters, params: dict) -> tuple[float, float, float]:
        """(images passing ``filters``, all ok images, the share passing the filters but the tag), by
        the planner, filter by filter where its estimate of the whole is off (search.sql
        ``estimate_category``, :meth:`tag_rows`): the category as the creators' images plus the
        objects', the tag as its rows times the other filters' share, as if independent."""
        def rows(names: list[str]) -> float:
            return self._plan_rows(conn, pgsql.SQL(self.q["estimate_filtered_images"]).format(filters=self._and(names)),
                                   params)

        names = [n for n in self.filter_names(filters) if n not in ("filter_tag", "filter_category")]
        total = rows(["filter_ok"])
        untagged = rows(names) if len(names) > 1 else total
        if filters.category is not None:
            objects = self._plan_rows(conn, pgsql.SQL(self.q["estimate_category_objects"]), params)
            untagged = rows([*names, "estimate_category"]) + objects * (untagged / total if total > 0 else 1.0)
        share = min(untagged / total, 1.0) if total > 0 else 1.0
        if filters.tag is None:
            return untagged, total, share
        return self.tag_rows(conn, params) * share, total, share

    def tag_rows(self, conn: psycopg.Connection, params: dict) -> float:
        """The planner's estimate of the tag filter's rows: ``ids_tag``'s, by EXPLAIN (``params`` from
        :meth:`params`)."""
        return self._plan_rows(conn, pgsql.SQL("EXPLAIN (FORMAT JSON) ") + pgsql.SQL(self.q["ids_tag"]), params)

    @staticmethod
    def _plan_rows(conn: psycopg.Connection, statement: pgsql.Composable, params: dict) -> float:
        plan = conn.execute(statement, params, prepare=False).fetchone()[0]
        return float(plan[0]["Plan"]["Plan Rows"])

    def describe(self, conn: psycopg.Connection, ids: Sequence[int]) -> dict[int, tuple]:
        """image_id -> (image_key, platform, username, thumb_key, taken_at)."""
        if not ids:
            return {}
        rows = conn.execute(self.q["describe_images"], {"ids": list(ids)}).fetchall()
        return {r[0]: tuple(r[1:]) for r in rows}


def nearest_images(
    conn: psycopg.Connection,
    vector: np.ndarray | Sequence[float],
    *,
    model_version: str,
    k: int = 10,
    tag: str | None = None,
    filters: SearchFilters = NO_FILTERS,
    settings: SearchSettings = SearchSettings(),
) -> list[ImageHit]:
    """The ``k`` images of ``model_version`` nearest to ``vector`` (cosine) that pass ``filters``
    (``tag``: shorthand for a tag filter)."""
    if tag is not None:
        filters = dataclasses.replace(filters, tag=tag)
    search = VectorSearch(settings)
    with conn.transaction():
        ensure_vector_types(conn)  # before the cursor: a cursor copies the connection's adapters
        dim = search.dim(conn, model_version)
        ranked = search.nearest(conn, vector, filters, model_version, dim, k)
        described = search.describe(conn, [image_id for image_id, _ in ranked])
    return [ImageHit(*described[image_id][:4], distance) for image_id, distance in ranked if image_id in described]


def _version(embedder: ImageEmbedder, model_version: str | None) -> str:
    if model_version is not None and model_version != embedder.version:
        raise ValueError(f"the query embedder is {embedder.version!r}; it cannot search vectors of {model_version!r}")
    return embedder.version


def search_images_by_text(
    conn: psycopg.Connection,
    embedder: ImageEmbedder,
    text: str,
    *,
    k: int = 10,
    tag: str | None = None,
    model_version: str | None = None,
    settings: SearchSettings = SearchSettings(),
) -> list[ImageHit]:
    """Text → embedding (same model) → nearest images of that model version."""
    version = _version(embedder, model_version)
    return nearest_images(conn, embedder.embed_texts([text])[0], model_version=version, k=k, tag=tag,
                          settings=settings)


def search_images_by_image(
    conn: psycopg.Connection,
    *,
    image_key: str | None = None,
    image: np.ndarray | None = None,
    embedder: ImageEmbedder | None = None,
    model_version: str | None = None,
    k: int = 10,
    tag: str | None = None,
    settings: SearchSettings = SearchSettings(),
) -> list[ImageHit]:
    """Nearest images to a stored image (``image_key``: its stored vector, no model needed) or to a
    new RGB array (``image``: embedded with ``embedder``)."""
    if (image_key is None) == (image is None):
        raise ValueError("give exactly one of image_key or image")
    if image is not None:
        if embedder is None:
            raise ValueError("embedding a new image needs the embedder")
        version = _version(embedder, model_version)
        return nearest_images(conn, embedder.embed_images([image])[0], model_version=version, k=k, tag=tag,
                              settings=settings)
    version = model_version or (embedder.version if embedder is not None else None)
    if version is None:
        raise ValueError("searching by a stored image needs model_version (or the embedder)")
    with conn.transaction():
        vector = VectorSearch(settings).stored_vector(conn, image_key, version)
    if vector is None:
        raise SearchError(f"image {image_key!r} has no embedding for model version {version!r}")
    return nearest_images(conn, vector, model_version=version, k=k, tag=tag, settings=settings)
