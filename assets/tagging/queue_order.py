"""A review queue that learns: pending items ordered by the expected value of a label now.

Three things make a label worth more, and each item's score adds them up:

* **uncertainty** — a score near the tag's threshold is where the model is least sure, and where a
  label moves a calibrated threshold (``1 - |p - t| / t``, weight 0.5);
* **scarcity** — a tag with few labels so far gains most from one more (``1 / (1 + labels)``, 0.25);
* **diversity** — an image from an embedding cluster no reviewer has labelled yet teaches more than a
  tenth look-alike (``1 / (1 + labels in its cluster)``, 0.25).

The order is greedy: after each pick its tag and cluster count as one label more, so the first
page spreads over tags and clusters instead of fifty near-identical items. Clusters are a spherical
k-means of the pool's (and the labelled images') embeddings, per model version. Each item carries
the reason it is where it is, e.g. ``p=0.48 near threshold 0.50; 2 labels so far; cluster 3 unseen``.

No Dagster here: the app orders its review page with :func:`rank_queue`; the escalation asset
stores the order in ``review_priorities`` (:func:`refresh_priorities`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg

from assets.tagging.review import ReviewItem
from assets.tagging.search import ensure_vector_types
from creatorlens.queries import load_queries

QUERIES = "escalation.sql"
W_UNCERTAINTY, W_SCARCITY, W_DIVERSITY = 0.5, 0.25, 0.25
NEAR = 0.15  # within 15% of the threshold reads "near"
DEFAULT_POOL = 500  # candidates nearest their threshold the order picks from (embeddings fetched per view)
LABELLED_SAMPLE = 1000  # most recently labelled images whose clusters count as "seen"
DEFAULT_CLUSTERS = 8


@dataclass(frozen=True)
class Candidate:
    key: Any  # what the caller identifies the item by (a review_id)
    tag: str
    confidence: float
    threshold: float
    cluster: int | None = None


@dataclass(frozen=True)
class Ranked:
    key: Any
    rank: int
    score: float
    cluster: int | None
    why: str


def uncertainty(confidence: float, threshold: float) -> float:
    return max(0.0, 1.0 - abs(confidence - threshold) / max(threshold, 1e-6))


def order_candidates(candidates: list[Candidate], labels_per_tag: dict[str, int],
                     labels_per_cluster: dict[int, int] | None = None, *, limit: int | None = None) -> list[Ranked]:
    """Greedy expected-value order of ``candidates`` (see the module docstring), best first."""
    n = len(candidates)
    if not n:
        return []
    labels_per_cluster = labels_per_cluster or {}
    tags = sorted({c.tag for c in candidates})
    tag_idx = np.array([tags.index(c.tag) for c in candidates])
    clusters = sorted({c.cluster for c in candidates if c.cluster is not None})
    has_cluster = np.array([c.cluster is not None for c in candidates])
    cl_idx = np.array([clusters.index(c.cluster) if c.cluster is not None else 0 for c in candidates])
    u = np.array([uncertainty(c.confidence, c.threshold) for c in candidates])
    tag_labels = np.array([labels_per_tag.get(t, 0) for t in tags], dtype=np.float64)
    cl_labels = np.array([labels_per_cluster.get(k, 0) for k in clusters] or [0], dtype=np.float64)
    picked_tag = np.zeros(len(tags))
    picked_cl = np.zeros(max(len(clusters), 1))
    taken = np.zeros(n, dtype=bool)
    out: list[Ranked] = []
    for rank in range(min(n, limit or n)):
        scarcity = 1.0 / (1.0 + tag_labels[tag_idx] + picked_tag[tag_idx])
        diversity = np.where(has_cluster, 1.0 / (1.0 + cl_labels[cl_idx] + picked_cl[cl_idx]), 0.5)
        score = W_UNCERTAINTY * u + W_SCARCITY * scarcity + W_DIVERSITY * diversity
        score[taken] = -np.inf
        j = int(np.argmax(score))  # ties: the first, i.e. the pool's order (nearest the threshold)
        c = candidates[j]
        parts = [f"p={c.confidence:.2f} {'near' if abs(c.confidence - c.threshold) <= NEAR * c.threshold else 'vs'} "
                 f"threshold {c.threshold:.2f}"]
        n_labels = int(tag_labels[tag_idx[j]])
        parts.append(f"{n_labels} label{'' if n_labels == 1 else 's'} so far"
                     + (f" (+{int(picked_tag[tag_idx[j]])} ahead in the queue)" if picked_tag[tag_idx[j]] else ""))
        if c.cluster is not None:
            seen = int(cl_labels[cl_idx[j]])
            parts.append(f"cluster {c.cluster} unseen" if seen == 0 and not picked_cl[cl_idx[j]]
                         else f"cluster {c.cluster}: {seen} labelled, {int(picked_cl[cl_idx[j]])} ahead")
        out.append(Ranked(c.key, rank + 1, float(score[j]), c.cluster, "; ".join(parts)))
        taken[j] = True
        picked_tag[tag_idx[j]] += 1
        if c.cluster is not None:
            picked_cl[cl_idx[j]] += 1
    return out


def spherical_kmeans(vectors: np.ndarray, k: int, *, iterations: int = 15) -> np.ndarray:
    """Cluster of each (L2-normalised) row: farthest-point start from row 0, then cosine k-means."""
    n = len(vectors)
    k = max(1, min(k, n))
    x = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    centres = [x[0]]
    for _ in range(1, k):
        nearest = np.max(x @ np.stack(centres).T, axis=1)
        centres.append(x[int(np.argmin(nearest))])
    c = np.stack(centres)
    assign = np.zeros(n, dtype=int)
    for _ in range(iterations):
        new = np.argmax(x @ c.T, axis=1)
        if _ and np.array_equal(new, assign):
            break
        assign = new
        for j in range(k):
            members = x[assign == j]
            if len(members):
                m = members.sum(axis=0)
                c[j] = m / max(np.linalg.norm(m), 1e-12)
    return assign


@dataclass(frozen=True)
class VlmSuggestion:
    status: str
    model: str
    prompt_version: str
    present: bool | None
    detail: str | None
    raw_answer: str | None
    latency_ms: float | None


@dataclass(frozen=True)
class RankedItem(ReviewItem):
    rank: int = 0
    score: float = 0.0
    cluster: int | None = None
    why: str = ""
    vlm: VlmSuggestion | None = None


def rank_queue(conn: psycopg.Connection, *, model_version: str | None = None, limit: int = 50,
               pool: int = DEFAULT_POOL, clusters: int = DEFAULT_CLUSTERS) -> list[RankedItem]:
    """The next ``limit`` pending items by expected value, each with its reason and the VLM's suggestion."""
    q = load_queries(QUERIES)
    with conn.transaction():
        ensure_vector_types(conn)
        rows = conn.execute(q["queue_candidates"], {"model_version": model_version, "pool": pool}).fetchall()
        if not rows:
            return []
        labels = dict(conn.execute(q["labels_per_tag"]).fetchall())
        cluster_of, labelled = _clusters(conn, q, rows, clusters)
        items = {r[0]: ReviewItem(*r[:12]) for r in rows}
        cands = [Candidate(r[0], r[4], float(r[8]), float(r[9]), cluster_of.get((r[10], r[12]))) for r in rows]
        ranked = order_candidates(cands, labels, labelled, limit=limit)
        found = conn.execute(q["suggestions"], {"review_ids": [r.key for r in ranked]}).fetchall()
    suggestions = {row[0]: VlmSuggestion(*row[1:]) for row in found}
    return [RankedItem(**items[r.key].__dict__, rank=r.rank, score=r.score, cluster=r.cluster, why=r.why,
                       vlm=suggestions.get(r.key)) for r in ranked]


def _clusters(conn: psycopg.Connection, q: dict, rows: list, k: int) -> tuple[dict, dict]:
    """(model_version, image_id) → cluster for the pool, and labelled images per cluster; one clustering per
    model version (clusters of different versions are numbered apart)."""
    cluster_of: dict[tuple[str, int], int] = {}
    labelled: Counter = Counter()
    offset = 0
    for version in sorted({r[10] for r in rows}):
        ids = sorted({r[12] for r in rows if r[10] == version})
        pool = conn.execute(q["image_embeddings_of"], {"model_version": version, "image_ids": ids}).fetchall()
        known = conn.execute(q["labelled_embeddings"], {"model_version": version, "limit": LABELLED_SAMPLE}).fetchall()
        vectors = {image_id: vec.to_numpy().astype(np.float32) for image_id, vec in [*pool, *known]}
        if not vectors:
            continue
        order = sorted(vectors)
        assign = spherical_kmeans(np.stack([vectors[i] for i in order]), k)
        of = dict(zip(order, (int(a) + offset for a in assign), strict=True))
        cluster_of.update({(version, i): of[i] for i in ids if i in of})
        labelled.update(of[i] for i, _ in known)
        offset += int(assign.max()) + 1
    return cluster_of, dict(labelled)


def refresh_priorities(conn: psycopg.Connection, *, clusters: int = DEFAULT_CLUSTERS, limit: int = 500) -> int:
    """Store the current order of the queue's first ``limit`` items (``review_priorities``); items ranked."""
    ranked = rank_queue(conn, limit=limit, clusters=clusters)
    q = load_queries(QUERIES)
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(q["clear_priorities"])
        for r in ranked:
            cur.execute(q["store_priority"], {"review_id": r.review_id, "rank": r.rank, "score": r.score,
                                              "cluster": r.cluster, "reason": r.why})
    return len(ranked)
