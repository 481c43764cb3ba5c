"""Image search over pgvector: text → nearest images, image → nearest images, one model version at a time.

Usable by the search app as is::

    embedder = models.load("image_embedder")
    with warehouse.raw_connection() as conn:
        hits = search_images_by_text(conn, embedder, "a cat on a sofa", k=20, tag="pets")

Every query names a model version (by default the embedder's own); a query vector from one model
is never compared with another model's vectors. The per-version partial HNSW index answers the
query; ``hnsw.ef_search`` (recall/latency trade-off) and ``hnsw.iterative_scan`` (so a filtered
query still finds ``k`` rows) are set for the query's transaction only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import psycopg
from pgvector import HalfVector
from pgvector.psycopg import register_vector
from psycopg import sql as pgsql

from creatorlens.queries import load_queries
from gpu_ops.embeddings import ImageEmbedder

QUERIES = "search.sql"


@dataclass(frozen=True)
class SearchSettings:
    ef_search: int = 40  # candidates kept per scan (≥ k); higher = better recall, slower (pgvector default)
    iterative_scan: str = "relaxed_order"  # off | strict_order | relaxed_order (filtered queries)
    max_scan_tuples: int = 20_000  # cap on tuples an iterative scan visits


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


def ensure_vector_types(conn: psycopg.Connection) -> None:
    """Register pgvector's types on this connection once (call inside a transaction, before cursors)."""
    if conn.adapters.types.get("halfvec") is None:
        register_vector(conn)


def _model_dim(cur: psycopg.Cursor, model_version: str) -> int:
    q = load_queries(QUERIES)
    row = cur.execute(q["model_dim"], {"model_version": model_version}).fetchone()
    if row is None:
        known = [r[0] for r in cur.execute(q["known_models"]).fetchall()]
        raise SearchError(f"no embeddings for model version {model_version!r}; known versions: {known}")
    return int(row[0])


def nearest_images(
    conn: psycopg.Connection,
    vector: np.ndarray | Sequence[float],
    *,
    model_version: str,
    k: int = 10,
    tag: str | None = None,
    settings: SearchSettings = SearchSettings(),
) -> list[ImageHit]:
    """The ``k`` images of ``model_version`` nearest to ``vector`` (cosine), optionally only those tagged ``tag``."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    q = load_queries(QUERIES)
    vec = np.asarray(vector, dtype=np.float32).ravel()
    with conn.transaction():
        ensure_vector_types(conn)  # before the cursor: a cursor copies the connection's adapters
        cur = conn.cursor()
        dim = _model_dim(cur, model_version)
        if vec.shape[0] != dim:
            raise ValueError(f"query vector has {vec.shape[0]} dims, model version {model_version!r} has {dim}")
        params: dict[str, object] = {"query": HalfVector(vec), "model_version": model_version, "k": k}
        name = "nearest_images"
        if tag is not None:
            row = cur.execute(q["tag_id"], {"tag": tag}).fetchone()
            if row is None:
                raise SearchError(f"unknown tag {tag!r}")
            params["tag_id"] = row[0]
            name = "nearest_images_tagged"
        cur.execute(q["search_settings"], {
            "ef_search": str(max(settings.ef_search, k)), "iterative_scan": settings.iterative_scan,
            "max_scan_tuples": str(settings.max_scan_tuples),
        })
        statement = pgsql.SQL(q[name]).format(dim=pgsql.Literal(dim))
        # prepare=False: a custom plan per call, so the planner matches the partial index's model_version.
        rows = cur.execute(statement, params, prepare=False).fetchall()
    return [ImageHit(key, platform, user, thumb, float(dist)) for key, platform, user, thumb, dist in rows]


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
        ensure_vector_types(conn)
        row = conn.execute(load_queries(QUERIES)["stored_embedding"],
                          {"image_key": image_key, "model_version": version}).fetchone()
    if row is None:
        raise SearchError(f"image {image_key!r} has no embedding for model version {version!r}")
    return nearest_images(conn, row[0].to_numpy(), model_version=version, k=k, tag=tag, settings=settings)
