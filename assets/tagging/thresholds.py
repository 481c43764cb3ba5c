"""Warehouse reads and writes the tagging assets need besides the batch promotion."""

from __future__ import annotations

import numpy as np
import pandas as pd
import psycopg

from assets.tagging.calibration import CALIBRATED, ThresholdResult
from assets.tagging.scoring import prompt_bank, score_images
from assets.tagging.search import ensure_vector_types
from assets.tagging.store import upsert_taxonomy
from assets.tagging.taxonomy import Taxonomy
from creatorlens.queries import load_queries
from gpu_ops.embeddings import ImageEmbedder

QUERIES = "tagging.sql"


def calibrated_thresholds(conn: psycopg.Connection, model_version: str, taxonomy_version: str) -> dict[str, float]:
    """Tag → threshold calibrated for this model version on this taxonomy version."""
    with conn.transaction():
        rows = conn.execute(load_queries(QUERIES)["calibrated_thresholds"],
                            {"model_version": model_version, "taxonomy_version": taxonomy_version}).fetchall()
    return {name: float(threshold) for name, threshold in rows}


def labelled_scores(
    conn: psycopg.Connection, embedder: ImageEmbedder, taxonomy: Taxonomy, csv_labels: pd.DataFrame
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Labels (CSV, then reviewers' feedback, which wins for the same pair) with this model's score.

    Returns the labelled rows (``image_key, tag, label, source, score``) and counts of labels that
    could not be used (unknown tag, or no embedding of the image for this model version).
    """
    q = load_queries(QUERIES)
    with conn.transaction():
        feedback = pd.DataFrame(conn.execute(q["feedback_labels"]).fetchall(), columns=["image_key", "tag", "label"])
    labels = pd.concat([csv_labels.assign(source="csv"), feedback.assign(source="feedback")], ignore_index=True)
    labels = labels.drop_duplicates(["image_key", "tag"], keep="last").reset_index(drop=True)
    known = {t.name for t in taxonomy.tags}
    unmatched = {"unknown_tag": int((~labels["tag"].isin(known)).sum())}
    labels = labels[labels["tag"].isin(known)]
    keys = sorted(set(labels["image_key"]))
    with conn.transaction():
        ensure_vector_types(conn)
        rows = conn.execute(q["embeddings_for"], {"model_version": embedder.version, "image_keys": keys}).fetchall()
    vectors = {key: vec.to_numpy().astype(np.float32) for key, vec in rows}
    unmatched["no_embedding_for_model"] = int((~labels["image_key"].isin(vectors)).sum())
    labels = labels[labels["image_key"].isin(vectors)].reset_index(drop=True)
    if labels.empty:
        return labels.assign(score=pd.Series(dtype="float64")), unmatched
    bank = prompt_bank(embedder, taxonomy)
    image_keys = sorted(vectors)
    scores = score_images(embedder, bank, np.stack([vectors[k] for k in image_keys]))
    row_of = {k: i for i, k in enumerate(image_keys)}
    col_of = {name: j for j, name in enumerate(bank.names)}
    labels["score"] = [float(scores[row_of[k], col_of[t]]) for k, t in zip(labels["image_key"], labels["tag"],
                                                                          strict=True)]
    labels["label"] = labels["label"].astype(bool)
    return labels, unmatched


def write_thresholds(conn: psycopg.Connection, model_version: str, taxonomy: Taxonomy,
                     results: list[ThresholdResult]) -> int:
    """Upsert the calibrated thresholds (tags left uncalibrated keep their taxonomy default)."""
    q = load_queries(QUERIES)
    written = 0
    with conn.transaction(), conn.cursor() as cur:
        upsert_taxonomy(cur, taxonomy)
        for r in results:
            if r.status != CALIBRATED:
                continue
            cur.execute(q["upsert_threshold"], {
                "model_version": model_version, "tag": r.tag, "threshold": r.threshold, "method": r.method,
                "precision": r.precision, "recall": r.recall, "f1": r.f1, "positives": r.positives,
                "negatives": r.negatives, "taxonomy_version": taxonomy.version,
            })
            written += cur.rowcount
    return written
