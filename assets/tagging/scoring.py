"""Tagging as tables: embeddings → zero-shot scores → image tag rows, review rows, creator aggregates.

The bridge between :mod:`gpu_ops.zeroshot` (arrays) and the assets (DataFrames). Nothing here
touches Dagster or the database.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from assets.tagging.taxonomy import Taxonomy
from gpu_ops.embeddings import ImageEmbedder
from gpu_ops.zeroshot import PromptBank, Routing, ZeroShotTag, build_prompt_bank, route, zero_shot_scores

EMBEDDING_COLUMNS = (
    "image_key", "platform", "username", "status", "error_reason", "error",
    "model_version", "model_id", "backend", "scoring", "dim", "embedding",
)
TAG_COLUMNS = (
    "image_key", "platform", "username", "tag", "category", "exclusive", "confidence", "threshold",
    "threshold_source", "review_floor", "assigned", "review_reason", "model_version", "taxonomy_version",
)
CREATOR_TAG_COLUMNS = (
    "platform", "username", "tag", "category", "share", "mean_confidence", "images_tagged", "images_analysed",
    "model_version", "taxonomy_version",
)

_bank_lock = threading.Lock()
_banks: dict[tuple[str, str], PromptBank] = {}


def empty_frame(columns: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})


def zero_shot_tags(taxonomy: Taxonomy) -> list[ZeroShotTag]:
    return [ZeroShotTag(t.name, t.category, t.exclusive, t.prompts) for t in taxonomy.tags]


def prompt_bank(embedder: ImageEmbedder, taxonomy: Taxonomy) -> PromptBank:
    """Tag text embeddings for this model and taxonomy, computed once per process."""
    key = (embedder.version, taxonomy.version)
    with _bank_lock:
        bank = _banks.get(key)
        if bank is None:
            bank = build_prompt_bank(zero_shot_tags(taxonomy), embedder.embed_texts, taxonomy.negatives())
            _banks[key] = bank
        return bank


def resolve_thresholds(
    taxonomy: Taxonomy, scoring: str, calibrated: Mapping[str, float] | None = None
) -> tuple[np.ndarray, list[str]]:
    """Per tag (taxonomy order): the calibrated threshold when there is one, else the taxonomy's."""
    calibrated = calibrated or {}
    values, sources = [], []
    for tag in taxonomy.tags:
        if tag.name in calibrated:
            values.append(float(calibrated[tag.name]))
            sources.append("calibrated")
        else:
            values.append(tag.threshold(scoring))
            sources.append("taxonomy")
    return np.asarray(values, dtype=np.float32), sources


def embedding_matrix(frame: pd.DataFrame) -> np.ndarray:
    """The ``embedding`` column of ok rows as an (N, d) float32 matrix."""
    if frame.empty:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack([np.asarray(v, dtype=np.float32) for v in frame["embedding"]])


def score_images(embedder: ImageEmbedder, bank: PromptBank, embeddings: np.ndarray) -> np.ndarray:
    return zero_shot_scores(embeddings, bank, rule=embedder.scoring, logit_scale=embedder.logit_scale,
                            logit_bias=embedder.logit_bias)


def tag_rows(
    images: pd.DataFrame,
    scores: np.ndarray,
    routing: Routing,
    bank: PromptBank,
    thresholds: np.ndarray,
    threshold_sources: Sequence[str],
    *,
    model_version: str,
    taxonomy_version: str,
) -> pd.DataFrame:
    """One row per (image, tag) that is assigned or queued for review; ``images`` aligns with ``scores``."""
    keep_i, keep_t = np.nonzero(routing.assigned | routing.queued)
    if not len(keep_i):
        return empty_frame(TAG_COLUMNS)
    tags = bank.tags
    reasons = routing.reason[keep_i, keep_t]
    return pd.DataFrame({
        "image_key": images["image_key"].to_numpy()[keep_i],
        "platform": images["platform"].to_numpy()[keep_i],
        "username": images["username"].to_numpy()[keep_i],
        "tag": [tags[t].name for t in keep_t],
        "category": [tags[t].category for t in keep_t],
        "exclusive": [tags[t].exclusive for t in keep_t],
        "confidence": scores[keep_i, keep_t].astype(np.float32),
        "threshold": thresholds[keep_t].astype(np.float32),
        "threshold_source": [threshold_sources[t] for t in keep_t],
        "review_floor": routing.floors[keep_t].astype(np.float32),
        "assigned": routing.assigned[keep_i, keep_t],
        "review_reason": [r or None for r in reasons],
        "model_version": model_version,
        "taxonomy_version": taxonomy_version,
    })


def tag_images(
    embedder: ImageEmbedder,
    taxonomy: Taxonomy,
    embeddings: pd.DataFrame,
    *,
    calibrated: Mapping[str, float] | None = None,
    floor_ratio: float = 0.5,
) -> pd.DataFrame:
    """Score the ok rows of an embeddings frame against the taxonomy and route the results."""
    ok = embeddings[embeddings["status"] == "ok"].reset_index(drop=True)
    if ok.empty:
        return empty_frame(TAG_COLUMNS)
    bank = prompt_bank(embedder, taxonomy)
    scores = score_images(embedder, bank, embedding_matrix(ok))
    thresholds, sources = resolve_thresholds(taxonomy, embedder.scoring, calibrated)
    routing = route(scores, bank, thresholds, floor_ratio)
    return tag_rows(ok, scores, routing, bank, thresholds, sources,
                    model_version=embedder.version, taxonomy_version=taxonomy.version)


def images_analysed(embeddings: pd.DataFrame) -> pd.DataFrame:
    """Per creator: how many images were embedded (the denominator of every share)."""
    ok = embeddings[embeddings["status"] == "ok"]
    if ok.empty:
        return pd.DataFrame({"platform": pd.Series(dtype=object), "username": pd.Series(dtype=object),
                             "images_analysed": pd.Series(dtype="int64")})
    return ok.groupby(["platform", "username"]).size().rename("images_analysed").reset_index()


def creator_tag_rows(tags: pd.DataFrame, embeddings: pd.DataFrame) -> pd.DataFrame:
    """Per creator and tag: share of analysed images carrying the (assigned) tag, and mean confidence."""
    analysed = images_analysed(embeddings)
    assigned = tags[tags["assigned"].astype(bool)] if not tags.empty else tags
    if assigned.empty or analysed.empty:
        return empty_frame(CREATOR_TAG_COLUMNS)
    grouped = (
        assigned.groupby(["platform", "username", "tag", "category", "model_version", "taxonomy_version"])
        .agg(images_tagged=("image_key", "nunique"), mean_confidence=("confidence", "mean"))
        .reset_index()
        .merge(analysed, on=["platform", "username"], how="left", validate="many_to_one")
    )
    grouped["share"] = grouped["images_tagged"] / grouped["images_analysed"]
    grouped["mean_confidence"] = grouped["mean_confidence"].astype(np.float64)
    return grouped[list(CREATOR_TAG_COLUMNS)].sort_values(["username", "share", "tag"], ascending=[True, False, True]) \
        .reset_index(drop=True)
