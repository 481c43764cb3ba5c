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

import re
import time
from dataclasses import dataclass, field
from datetime import datetime

import psycopg
from psycopg import errors as pg_errors

from assets.tagging.taxonomy import refused_terms
from creatorlens.queries import load_queries

QUERIES = "review.sql"


class ReviewError(RuntimeError):
    """The item does not exist, is already resolved, or the correction names an unknown tag."""


class UnknownItem(ReviewError, LookupError):
    """The review item, image or tag named does not exist."""


class ReviewConflict(ReviewError):
    """Concurrent decisions on the same image kept colliding; nothing was written (ask again)."""


class TagNameError(ValueError):
    """A new tag name breaks the naming rule or the refusal policy."""


# Tags a reviewer types in: lowercase letters, digits, spaces and hyphens, 2–50 characters,
# starting and ending with a letter or digit. Taxonomy tags keep their snake_case names.
TAG_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9 -]{0,48}[a-z0-9]$")


def check_new_tag_name(name: str) -> str:
    """``name`` if a reviewer may create it as a new tag, else :class:`TagNameError` saying why."""
    if not TAG_NAME_RE.fullmatch(name) or "  " in name:
        raise TagNameError(f"tag name {name!r}: use 2–50 lowercase letters, digits, single spaces or hyphens, "
                           "starting and ending with a letter or digit")
    refused = refused_terms(name)
    if refused:
        reasons = "; ".join(f"{term!r} ({label})" for label, term in refused)
        raise TagNameError(f"tag name {name!r} is refused: tags never infer {reasons}")
    return name


# Lock order. Two decisions on one image that settle the same exclusive category (reviewers accepting
# rival tags) touch each other's queue rows: each locks its own item, then the rival's to supersede it,
# a deadlock when taken in opposite orders. So before any write, a decision locks every queue item of
# that image, model version and category, lowest review_id first; the second decision waits for the
# first, then finds its item superseded (409). A decision that spans two categories (a correction to
# another exclusive category) could still meet a deadlock: it is retried a bounded number of times.
# The statements: review.sql's item_scope and lock_category.
DEADLOCK_RETRIES = 3


def _lock_category(cur: psycopg.Cursor, image_id: int, model_version: str | None, category: str) -> None:
    """Lock the image's queue items of one category (exclusive ones only matter) in review_id order."""
    cur.execute(load_queries(QUERIES)["lock_category"], {"image_id": image_id, "model_version": model_version, "category": category})


def _lock_item_scope(cur: psycopg.Cursor, review_id: int) -> None:
    """Before claiming ``review_id``: if its tag is in an exclusive category, lock that category's items."""
    row = cur.execute(load_queries(QUERIES)["item_scope"], {"review_id": review_id}).fetchone()
    if row is not None and row[3]:
        _lock_category(cur, row[0], row[1], row[2])


def _retrying(conn: psycopg.Connection, work):
    """``work()`` (which opens its own ``conn.transaction()``: a savepoint inside a request's transaction),
    again after a deadlock or serialisation failure, at most :data:`DEADLOCK_RETRIES` times; then
    :class:`ReviewConflict`. A rolled-back attempt leaves nothing behind."""
    for attempt in range(DEADLOCK_RETRIES + 1):
        try:
            return work()
        except (pg_errors.DeadlockDetected, pg_errors.SerializationFailure) as exc:
            if attempt == DEADLOCK_RETRIES:
                raise ReviewConflict("another reviewer is deciding on the same image right now: try again") from exc
            time.sleep(0.02 * (attempt + 1))


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
    review_id: int | None  # None: a direct edit of an image's tags, not a queue item
    image_id: int
    tag_id: int
    model_version: str | None
    confidence: float | None
    image_key: str
    tag: str
    category: str
    exclusive: bool


def _claim(cur: psycopg.Cursor, review_id: int) -> _Claim:
    row = cur.execute(load_queries(QUERIES)["claim"], {"review_id": review_id}).fetchone()
    if row is None:
        raise UnknownItem(f"review item {review_id} does not exist")
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

    def attempt() -> ReviewOutcome:
        with conn.transaction(), conn.cursor() as cur:
            _lock_item_scope(cur, review_id)
            decision = _Decision(cur, _claim(cur, review_id), reviewer, note, status)
            apply(decision)
            return decision.resolve()

    return _retrying(conn, attempt)


def _accept(d: _Decision) -> None:
    c = d.claim
    d.set(c.tag_id, c.tag, True, "accepted", c.confidence)
    if c.exclusive:
        d.settle_rivals(c.tag_id, c.category)


def _reject(d: _Decision) -> None:
    d.set(d.claim.tag_id, d.claim.tag, False, "rejected", d.claim.confidence)


def accept(conn: psycopg.Connection, review_id: int, reviewer: str, *, note: str | None = None) -> ReviewOutcome:
    """The queued tag applies to the image."""
    return _decide(conn, review_id, reviewer, note, "accepted", _accept)


def reject(conn: psycopg.Connection, review_id: int, reviewer: str, *, note: str | None = None) -> ReviewOutcome:
    """The queued tag does not apply to the image."""
    return _decide(conn, review_id, reviewer, note, "rejected", _reject)


def correct(conn: psycopg.Connection, review_id: int, reviewer: str, tag: str, *,
            note: str | None = None) -> ReviewOutcome:
    """The queued tag does not apply; ``tag`` does (e.g. ``scene_beach`` instead of ``scene_nature``)."""
    def apply(d: _Decision) -> None:
        c = d.claim
        row = d.cur.execute(d.q["tag_by_name"], {"tag": tag}).fetchone()
        if row is None:
            raise UnknownItem(f"unknown tag {tag!r}")
        new_id, new_name, new_category, new_exclusive = row
        if new_id == c.tag_id:
            raise ReviewError(f"correcting {c.tag!r} to itself: use accept()")
        if new_exclusive and not (c.exclusive and new_category == c.category):
            _lock_category(d.cur, c.image_id, c.model_version, new_category)
        d.set(c.tag_id, c.tag, False, "rejected", c.confidence)
        d.set(new_id, new_name, True, "added", d._ai_confidence(new_id))
        if new_exclusive:
            d.settle_rivals(new_id, new_category)
        else:
            # The corrected-to tag's own pending item is settled by this decision too: left pending, a
            # later reject would silently reverse the correction and feed calibration contradictory labels.
            d.cur.execute(d.q["supersede"], {"image_id": c.image_id, "model_version": c.model_version,
                                             "reviewer": d.reviewer, "tag_ids": [new_id], "review_id": c.review_id})
            d.outcome.superseded += d.cur.rowcount

    return _decide(conn, review_id, reviewer, note, "corrected", apply)


def _edit(conn: psycopg.Connection, image_key: str, tag: str, reviewer: str, note: str | None, *,
          present: bool) -> ReviewOutcome:
    if not reviewer:
        raise ValueError("an edit needs the reviewer's name")
    q = load_queries(QUERIES)
    return _retrying(conn, lambda: _edit_once(conn, q, image_key, tag, reviewer, note, present))


def _edit_once(conn: psycopg.Connection, q: dict, image_key: str, tag: str, reviewer: str, note: str | None,
               present: bool) -> ReviewOutcome:
    with conn.transaction(), conn.cursor() as cur:
        row = cur.execute(q["image_for_edit"], {"image_key": image_key}).fetchone()
        if row is None:
            raise UnknownItem(f"unknown image {image_key!r}")
        image_id, version = row
        found = cur.execute(q["tag_by_name"], {"tag": tag}).fetchone()
        if found is None:
            if not present:
                raise UnknownItem(f"unknown tag {tag!r}")
            cur.execute(q["create_user_tag"], {"tag": check_new_tag_name(tag), "description": f"added by {reviewer}"})
            found = cur.execute(q["tag_by_name"], {"tag": tag}).fetchone()
        tag_id, name, category, exclusive = found
        if exclusive:
            _lock_category(cur, image_id, version, category)
        pending = cur.execute(q["pending_item"], {"image_id": image_id, "tag_id": tag_id}).fetchone()
        if pending is not None:  # the model asked about exactly this: settle its queue item
            status = "accepted" if present else "rejected"
            decision = _Decision(cur, _claim(cur, pending[0]), reviewer, note, status)
            (_accept if present else _reject)(decision)
            return decision.resolve()
        claim = _Claim(None, image_id, tag_id, version, None, image_key, name, category, exclusive)
        decision = _Decision(cur, claim, reviewer, note, "added" if present else "removed")
        decision.set(tag_id, name, present, "added" if present else "removed", decision._ai_confidence(tag_id))
        if present and exclusive:
            decision.settle_rivals(tag_id, category)
        return decision.outcome


def add_tag(conn: psycopg.Connection, image_key: str, tag: str, reviewer: str, *,
            note: str | None = None) -> ReviewOutcome:
    """A reviewer puts ``tag`` on an image: a ``user`` row (present) and feedback (label true).

    A tag the taxonomy does not list is created (category ``custom``) if its name passes
    :func:`check_new_tag_name`. A pending queue item for the same tag is accepted instead.
    """
    return _edit(conn, image_key, tag, reviewer, note, present=True)


def remove_tag(conn: psycopg.Connection, image_key: str, tag: str, reviewer: str, *,
               note: str | None = None) -> ReviewOutcome:
    """A reviewer says ``tag`` does not apply: a ``user`` row (absent) and feedback (label false)."""
    return _edit(conn, image_key, tag, reviewer, note, present=False)


def flag_image(conn: psycopg.Connection, image_key: str, reason: str, reviewer: str) -> int:
    """Ask for ``image_key`` to be analysed again (one open flag per image; a new one replaces it)."""
    if not reviewer or not reason.strip():
        raise ValueError("a flag needs the reviewer and a reason")
    with conn.transaction():
        row = conn.execute(load_queries(QUERIES)["flag_image"],
                           {"image_key": image_key, "reason": reason.strip()[:500], "reviewer": reviewer}).fetchone()
    if row is None:
        raise UnknownItem(f"unknown image {image_key!r}")
    return int(row[0])


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
            raise UnknownItem(f"unknown image {image_key!r}")
        rows = cur.execute(q["effective_tags"], {"image_id": row[0], "model_version": model_version}).fetchall()
    return {name: (bool(present), source) for name, _, present, source, *_ in rows}
