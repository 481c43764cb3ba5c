"""The review API: a person accepts, rejects or corrects a queued tag, in one transaction.

* :func:`accept` — the queued tag applies: a ``user`` tag row (present) and a ``tag_feedback`` row
  (label true).
* :func:`reject` — it does not apply: a ``user`` row with ``present = false`` and feedback (label false).
* :func:`correct` — it does not apply, another tag does: both rows and both feedback rows.

In an exclusive category, settling one tag as present settles its rivals (the other tags of the
category the model assigned or queued on that image) as absent, with their own feedback rows,
and their pending queue items become ``superseded``. Every feedback row is a label that
``tag_thresholds`` calibration reads. A ``user`` row is what search and the effective tags of an
image read first: a person always wins over a model.

:func:`record_model_answer` is the escalation hook: an answer from a vision-language model (an
OpenAI-compatible endpoint, via the project's LLM client) is stored as a separate ``vlm`` row and
marks the item escalated; it never resolves the item and never overrides a person.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import psycopg

from creatorlens.queries import load_queries

QUERIES = "review.sql"


class ReviewError(RuntimeError):
    """The item does not exist, is already resolved, or the correction names an unknown tag."""


@dataclass(frozen=True)
class ReviewItem:
    review_id: int
    image_key: str
    username: str
    thumb_key: str | None
    tag: str
    category: str
    exclusive: bool
    reason: str
    confidence: float
    threshold: float
    model_version: str
    created_at: datetime


@dataclass
class ReviewOutcome:
    review_id: int
    image_key: str
    status: str
    decisions: dict[str, bool] = field(default_factory=dict)  # tag → present, as recorded for the user
    feedback_ids: list[int] = field(default_factory=list)
    superseded: int = 0


def pending_reviews(conn: psycopg.Connection, *, model_version: str | None = None, limit: int = 50) -> list[ReviewItem]:
    with conn.transaction():
        rows = conn.execute(load_queries(QUERIES)["pending"],
                            {"model_version": model_version, "limit": limit}).fetchall()
    return [ReviewItem(*r) for r in rows]


@dataclass
class _Claim:
    review_id: int
    image_id: int
    tag_id: int
    model_version: str
    confidence: float
    image_key: str
    tag: str
    category: str
    exclusive: bool


def _claim(cur: psycopg.Cursor, review_id: int) -> _Claim:
    row = cur.execute(load_queries(QUERIES)["claim"], {"review_id": review_id}).fetchone()
    if row is None:
        raise ReviewError(f"review item {review_id} does not exist")
    rid, image_id, tag_id, version, confidence, status, image_key, tag, category, exclusive = row
    if status != "pending":
        raise ReviewError(f"review item {review_id} ({image_key}, {tag}) is already {status}")
    return _Claim(rid, image_id, tag_id, version, confidence, image_key, tag, category, exclusive)


class _Decision:
    """Writes within one open transaction for one claimed item."""

    def __init__(self, cur: psycopg.Cursor, claim: _Claim, reviewer: str, note: str | None, status: str) -> None:
        self.cur, self.claim, self.reviewer, self.note = cur, claim, reviewer, note
        self.q = load_queries(QUERIES)
        self.outcome = ReviewOutcome(claim.review_id, claim.image_key, status)

    def _ai_confidence(self, tag_id: int) -> float | None:
        row = self.cur.execute(self.q["ai_confidence"], {
            "image_id": self.claim.image_id, "tag_id": tag_id, "model_version": self.claim.model_version}).fetchone()
        return row[0] if row else None

    def set(self, tag_id: int, tag: str, present: bool, action: str, confidence: float | None) -> None:
        c = self.claim
        self.cur.execute(self.q["set_user_tag"], {"image_id": c.image_id, "tag_id": tag_id, "present": present,
                                                 "review_id": c.review_id, "reviewer": self.reviewer})
        row = self.cur.execute(self.q["add_feedback"], {
            "image_id": c.image_id, "tag_id": tag_id, "label": present, "action": action, "review_id": c.review_id,
            "model_version": c.model_version, "confidence": confidence, "reviewer": self.reviewer, "note": self.note,
        }).fetchone()
        self.outcome.decisions[tag] = present
        self.outcome.feedback_ids.append(row[0])

    def settle_rivals(self, tag_id: int, category: str) -> None:
        """``tag_id`` is present in an exclusive category: its rivals on this image are not."""
        c = self.claim
        rivals = self.cur.execute(self.q["exclusive_rivals"], {
            "image_id": c.image_id, "model_version": c.model_version, "category": category, "tag_id": tag_id,
        }).fetchall()
        for rival_id, name, confidence in rivals:
            if name not in self.outcome.decisions:
                self.set(rival_id, name, False, "removed", confidence)
        settled = [rival_id for rival_id, _, _ in rivals] + [tag_id]
        self.cur.execute(self.q["supersede"], {"image_id": c.image_id, "model_version": c.model_version,
                                               "reviewer": self.reviewer, "tag_ids": settled,
                                               "review_id": c.review_id})
        self.outcome.superseded = self.cur.rowcount

    def resolve(self) -> ReviewOutcome:
        self.cur.execute(self.q["resolve"], {"status": self.outcome.status, "reviewer": self.reviewer,
                                             "review_id": self.claim.review_id})
        return self.outcome


def _decide(conn: psycopg.Connection, review_id: int, reviewer: str, note: str | None, status: str,
            apply) -> ReviewOutcome:
    if not reviewer:
        raise ValueError("a review needs the reviewer's name")
    with conn.transaction(), conn.cursor() as cur:
        decision = _Decision(cur, _claim(cur, review_id), reviewer, note, status)
        apply(decision)
        return decision.resolve()


def accept(conn: psycopg.Connection, review_id: int, reviewer: str, *, note: str | None = None) -> ReviewOutcome:
    """The queued tag applies to the image."""
    def apply(d: _Decision) -> None:
        c = d.claim
        d.set(c.tag_id, c.tag, True, "accepted", c.confidence)
        if c.exclusive:
            d.settle_rivals(c.tag_id, c.category)

    return _decide(conn, review_id, reviewer, note, "accepted", apply)


def reject(conn: psycopg.Connection, review_id: int, reviewer: str, *, note: str | None = None) -> ReviewOutcome:
    """The queued tag does not apply to the image."""
    def apply(d: _Decision) -> None:
        d.set(d.claim.tag_id, d.claim.tag, False, "rejected", d.claim.confidence)

    return _decide(conn, review_id, reviewer, note, "rejected", apply)


def correct(conn: psycopg.Connection, review_id: int, reviewer: str, tag: str, *,
            note: str | None = None) -> ReviewOutcome:
    """The queued tag does not apply; ``tag`` does (e.g. ``scene_beach`` instead of ``scene_nature``)."""
    def apply(d: _Decision) -> None:
        c = d.claim
        row = d.cur.execute(d.q["tag_by_name"], {"tag": tag}).fetchone()
        if row is None:
            raise ReviewError(f"unknown tag {tag!r}")
        new_id, new_name, new_category, new_exclusive = row
        if new_id == c.tag_id:
            raise ReviewError(f"correcting {c.tag!r} to itself: use accept()")
        d.set(c.tag_id, c.tag, False, "rejected", c.confidence)
        d.set(new_id, new_name, True, "added", d._ai_confidence(new_id))
        if new_exclusive:
            d.settle_rivals(new_id, new_category)

    return _decide(conn, review_id, reviewer, note, "corrected", apply)


def record_model_answer(
    conn: psycopg.Connection, review_id: int, *, model: str, present: bool, confidence: float | None = None,
) -> None:
    """Escalation hook: store a vision-language model's answer for a pending item as a ``vlm`` row.

    The item stays pending for a person; a ``user`` row, if any, is untouched and still wins.
    """
    if not model:
        raise ValueError("name the model that answered")
    q = load_queries(QUERIES)
    with conn.transaction(), conn.cursor() as cur:
        c = _claim(cur, review_id)
        cur.execute(q["record_model_answer"], {"image_id": c.image_id, "tag_id": c.tag_id, "model": model,
                                               "present": present, "confidence": confidence,
                                               "review_id": review_id})
        cur.execute(q["mark_escalated"], {"review_id": review_id})


def effective_tags(conn: psycopg.Connection, image_key: str, model_version: str) -> dict[str, tuple[bool, str]]:
    """Tag → (present, source) for one image and model version, reviewer decisions first."""
    q = load_queries(QUERIES)
    with conn.transaction(), conn.cursor() as cur:
        row = cur.execute(q["image_id"], {"image_key": image_key}).fetchone()
        if row is None:
            raise ReviewError(f"unknown image {image_key!r}")
        rows = cur.execute(q["effective_tags"], {"image_id": row[0], "model_version": model_version}).fetchall()
    return {name: (bool(present), source) for name, _, present, source, _ in rows}
