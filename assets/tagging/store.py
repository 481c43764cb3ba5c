"""Promote one batch's embeddings, tags, review items and creator tags in a single transaction.

Keyed on natural keys plus the model version: a new model version adds rows beside the old
ones, a rerun of the same version writes nothing new, and rows of this batch and version that
the new run no longer produced are removed (reviewer rows and resolved review items never are).
Embeddings are staged with a binary COPY of ``halfvec`` values; everything else with text COPY.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import psycopg
from pgvector import HalfVector
from psycopg import sql as pgsql

from assets.common.promotion import PromotionResult, copy_rows, frame_rows
from assets.tagging.history import DEFAULT_CHANGE, record_tag_history
from assets.tagging.scoring import images_analysed
from assets.tagging.search import ensure_vector_types
from assets.tagging.taxonomy import Taxonomy
from creatorlens.queries import load_queries

QUERIES = "promote_tags.sql"
DEFAULT_HNSW_M = 16
DEFAULT_HNSW_EF_CONSTRUCTION = 128


@dataclass(frozen=True)
class EmbeddingModel:
    model_version: str
    model_id: str
    backend: str
    dim: int
    scoring: str

    @classmethod
    def from_frame(cls, embeddings: pd.DataFrame) -> EmbeddingModel:
        ok = embeddings[embeddings["status"] == "ok"]
        versions = ok["model_version"].unique()
        if len(versions) != 1:
            raise ValueError(f"an embeddings frame holds exactly one model version, found {list(versions)}")
        row = ok.iloc[0]
        return cls(str(row["model_version"]), str(row["model_id"]), str(row["backend"]), int(row["dim"]),
                   str(row["scoring"]))


def vector_index_name(model_version: str) -> str:
    """Stable, short, identifier-safe index name for a model version's HNSW index."""
    return "image_embeddings_hnsw_" + hashlib.sha256(model_version.encode()).hexdigest()[:16]


def upsert_taxonomy(cur: psycopg.Cursor, taxonomy: Taxonomy) -> int:
    """Record the taxonomy (content + hash) and upsert its tags; returns tags changed."""
    q = load_queries(QUERIES)
    cur.execute(q["upsert_taxonomy"], {
        "taxonomy_version": taxonomy.version, "taxonomy_name": taxonomy.name, "taxonomy_source": taxonomy.source,
        "taxonomy_content": json.dumps(taxonomy.content),
    })
    cur.execute(q["create_stage_tags"])
    rows = ((t.name, t.category, t.exclusive, t.description) for t in taxonomy.tags)
    copy_rows(cur, "stage_tags", ("name", "category", "exclusive", "description"), rows)
    cur.execute(q["upsert_tags"], {"taxonomy_version": taxonomy.version})
    changed = cur.rowcount
    cur.execute("DROP TABLE stage_tags")
    return changed


def ensure_embedding_model(
    cur: psycopg.Cursor, model: EmbeddingModel, *, hnsw_m: int = DEFAULT_HNSW_M,
    hnsw_ef_construction: int = DEFAULT_HNSW_EF_CONSTRUCTION,
) -> dict[str, Any]:
    """Register a model version and create its partial HNSW index if missing; refuse a dimension change."""
    q = load_queries(QUERIES)
    params = {"model_version": model.model_version, "model_id": model.model_id, "backend": model.backend,
              "dim": model.dim, "scoring": model.scoring, "index_name": vector_index_name(model.model_version),
              "hnsw_m": hnsw_m, "hnsw_ef_construction": hnsw_ef_construction}
    cur.execute(q["register_model"], params)
    dim, index_name, m, efc = cur.execute(q["model_row"], params).fetchone()
    if dim != model.dim:
        raise ValueError(f"model version {model.model_version!r} is registered with {dim} dims, "
                         f"these embeddings have {model.dim}")
    cur.execute(pgsql.SQL(q["create_vector_index"]).format(
        index_name=pgsql.Identifier(index_name), dim=pgsql.Literal(int(dim)), m=pgsql.Literal(int(m)),
        ef_construction=pgsql.Literal(int(efc)), model_version=pgsql.Literal(model.model_version),
    ))
    return {"index_name": index_name, "dim": dim, "hnsw_m": m, "hnsw_ef_construction": efc}


def _copy_embeddings(cur: psycopg.Cursor, embeddings: pd.DataFrame) -> int:
    n = 0
    with cur.copy("COPY stage_embeddings (image_key, embedding) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["text", "halfvec"])
        for key, vec in zip(embeddings["image_key"], embeddings["embedding"], strict=True):
            copy.write_row([key, HalfVector(np.asarray(vec, dtype=np.float32))])
            n += 1
    return n


def _stage(cur: psycopg.Cursor, embeddings: pd.DataFrame, image_tags: pd.DataFrame,
           creator_tags: pd.DataFrame) -> dict[str, int]:
    """COPY the batch into the staging tables; rows staged per target table."""
    ok = embeddings[embeddings["status"] == "ok"]
    assigned = image_tags[image_tags["assigned"].astype(bool)] if not image_tags.empty else image_tags
    queued = image_tags[image_tags["review_reason"].notna()] if not image_tags.empty else image_tags
    staged = {"image_embeddings": _copy_embeddings(cur, ok)}
    # (target table, staging table, staging columns, frame columns, frame)
    for name, table, stage_cols, frame_cols, frame in (
        ("image_tags", "stage_image_tags", _TAG_STAGE, _TAG_STAGE, assigned),
        ("tag_review_queue", "stage_review", _REVIEW_STAGE, ("image_key", "tag", "review_reason", *_REVIEW_STAGE[3:]),
         queued),
        ("creator_tags", "stage_creator_tags", _CREATOR_STAGE, _CREATOR_STAGE, creator_tags),
        ("creator_analysis", "stage_creator_analysis", _ANALYSIS_STAGE, _ANALYSIS_STAGE, images_analysed(embeddings)),
    ):
        staged[name] = copy_rows(cur, table, stage_cols, frame_rows(frame, frame_cols))
    return staged


_TAG_STAGE = ("image_key", "tag", "confidence", "threshold", "threshold_source")
_REVIEW_STAGE = ("image_key", "tag", "reason", "confidence", "threshold", "review_floor")
_CREATOR_STAGE = ("platform", "username", "tag", "share", "mean_confidence", "images_tagged", "images_analysed")
_ANALYSIS_STAGE = ("platform", "username", "images_analysed")
_UPSERTS = (("image_embeddings", "embeddings"), ("image_tags", "image_tags"), ("tag_review_queue", "review"),
            ("creator_tags", "creator_tags"))


def promote_tags(
    conn: psycopg.Connection,
    batch_key: str,
    *,
    taxonomy: Taxonomy,
    embeddings: pd.DataFrame,
    image_tags: pd.DataFrame,
    creator_tags: pd.DataFrame,
    run_id: str,
    hnsw_m: int = DEFAULT_HNSW_M,
    hnsw_ef_construction: int = DEFAULT_HNSW_EF_CONSTRUCTION,
    history_change: float = DEFAULT_CHANGE,
    analysed_at: datetime | None = None,
) -> PromotionResult:
    """Write one batch's tagging results for one model version atomically."""
    q = load_queries(QUERIES)
    model = EmbeddingModel.from_frame(embeddings)
    params = {"batch_key": batch_key, "model_version": model.model_version, "taxonomy_version": taxonomy.version,
              "run_id": run_id}
    result = PromotionResult(batch_key)
    started = time.perf_counter()
    with conn.transaction():
        # Inside the transaction (a query before it would open an implicit one) and before the
        # cursor (a cursor copies the connection's adapters when it is created).
        ensure_vector_types(conn)
        with conn.cursor() as cur:
            cur.execute(q["lock_batch"], params)
            result.written["tags"] = upsert_taxonomy(cur, taxonomy)
            ensure_embedding_model(cur, model, hnsw_m=hnsw_m, hnsw_ef_construction=hnsw_ef_construction)
            cur.execute(q["create_stage"])
            result.staged = _stage(cur, embeddings, image_tags, creator_tags)
            for name, suffix in _UPSERTS:
                cur.execute(q[f"upsert_{suffix}"], params)
                result.written[name] = cur.rowcount
                cur.execute(q[f"delete_stale_{suffix}"], params)
                result.deleted[name] = cur.rowcount
            cur.execute(q["record_history"], params)
            result.written["tag_analysis_history"] = cur.rowcount
            result.written["creator_tag_history"], result.written["tag_history_changes"] = record_tag_history(
                cur, params, change_threshold=history_change, analysed_at=analysed_at)
            counts = {"staged": result.staged, "written": result.written, "deleted": result.deleted}
            cur.execute(q["record_promotion"], {**params, "counts": json.dumps(counts)})
    result.seconds = time.perf_counter() - started
    return result
