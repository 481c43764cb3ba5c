"""Creator profiles in the warehouse: promote one batch (one transaction), read what is already
there (to skip unchanged work), and find similar creators by text embedding.

SQL lives in ``sql/queries/profiles.sql``. The promotion COPYs into staging tables with
:func:`assets.common.promotion.copy_rows` and upserts on ``(platform, username)``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import psycopg
from sqlalchemy.engine import Engine

from assets.common.promotion import copy_rows, frame_rows
from creatorlens.fields import PLATFORM
from creatorlens.queries import load_queries

ENRICHMENT_COLUMNS = ("platform", "username", "bio", "category", "full_name", "followers", "is_business",
                      "is_verified", "enrich_status", "enriched_fields", "enriched_at")
PROFILE_COLUMNS = ("platform", "username", "status", "error", "profile", "persona", "topics", "model",
                   "prompt_version", "input_hash")
EMBEDDING_COLUMNS = ("platform", "username", "model", "text_source", "text_hash", "embedding")

# (result name, staging table, columns, upsert statement)
_TABLES = (
    ("creators", "stage_enrichment", ENRICHMENT_COLUMNS, "upsert_enrichment"),
    ("creator_profiles", "stage_profiles", PROFILE_COLUMNS, "upsert_profiles"),
    ("profile_embeddings", "stage_embeddings", EMBEDDING_COLUMNS, "upsert_embeddings"),
)


@dataclass
class ProfilePromotion:
    staged: dict[str, int] = field(default_factory=dict)
    written: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def vector_literal(values: Any) -> str:
    """pgvector's text form, ``[0.1,0.2,...]``, for COPY."""
    return "[" + ",".join(f"{float(v):.7g}" for v in np.asarray(values, dtype=np.float32)) + "]"


def _embeddings_for_copy(embeddings: pd.DataFrame) -> pd.DataFrame:
    if embeddings.empty:
        return embeddings
    return embeddings.assign(embedding=embeddings["embedding"].map(vector_literal))


def promote_profiles(conn: psycopg.Connection, batch_key: str, *, enriched: pd.DataFrame,
                     profiles: pd.DataFrame, embeddings: pd.DataFrame) -> ProfilePromotion:
    """Write one batch's enrichment, LLM profiles and embeddings atomically."""
    q = load_queries("profiles.sql")
    result = ProfilePromotion()
    started = time.perf_counter()
    frames = {"creators": enriched, "creator_profiles": profiles,
              "profile_embeddings": _embeddings_for_copy(embeddings)}
    params = {"batch_key": batch_key}
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(q["lock_batch"], params)
        cur.execute(q["create_stage"])
        for name, table, columns, _ in _TABLES:
            result.staged[name] = copy_rows(cur, table, columns, frame_rows(frames[name], columns))
        for name, _, _, statement in _TABLES:
            cur.execute(q[statement], params)
            result.written[name] = cur.rowcount
    result.seconds = time.perf_counter() - started
    return result


def profile_state(engine: Engine, usernames: Sequence[str], platform: str = PLATFORM) -> pd.DataFrame:
    """Per username: LLM profile status/input hash/model/persona and the embedded text's hash/model."""
    columns = ["username", "status", "input_hash", "model", "persona", "embed_model", "text_hash"]
    if not usernames:
        return pd.DataFrame(columns=columns)
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(load_queries("profiles.sql")["profile_state"],
                                    {"platform": platform, "usernames": list(usernames)}).all()
    return pd.DataFrame([tuple(r) for r in rows], columns=columns)


def similar_creators(engine: Engine, username: str, *, k: int = 10, platform: str = PLATFORM) -> list[tuple[str, float]]:
    """The ``k`` creators whose profile embedding is nearest (cosine) to ``username``'s, best first."""
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(load_queries("profiles.sql")["similar_creators"],
                                    {"platform": platform, "username": username, "k": k}).all()
    return [(r[0], float(r[1])) for r in rows]


def similar_to_vector(engine: Engine, vector: Any, *, k: int = 10, platform: str = PLATFORM) -> list[tuple[str, float]]:
    """The ``k`` creators nearest to a query embedding (e.g. of a brand brief), best first."""
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(load_queries("profiles.sql")["similar_to_vector"],
                                    {"platform": platform, "embedding": vector_literal(vector), "k": k}).all()
    return [(r[0], float(r[1])) for r in rows]


def profile_json(value: Any) -> str | None:
    """A profile for the ``jsonb`` column (dicts from the LLM, strings from Parquet)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return value if isinstance(value, str) else json.dumps(value)
