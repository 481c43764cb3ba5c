"""Assign not-yet-batched creators to new batches of ``batch_size``; the warehouse is the record.

Used by the ``creatorlens batch`` command now and by the new-creator sensor. Running it twice
with the same sources assigns nothing the second time. Batches are immutable once created: new
creators always open new batches, so a partition's membership never changes under a run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from assets.sources.parsing import Reject, SourceWarning
from creatorlens.fields import PLATFORM
from creatorlens.queries import load_queries
from resources.erasure import tombstoned

BATCH_KEY_FORMAT = "batch-{:05d}"


@dataclass
class BatchAssignment:
    new_batches: dict[str, list[str]] = field(default_factory=dict)
    all_batches: list[str] = field(default_factory=list)
    erased: int = 0  # candidates dropped because they were forgotten (creator_tombstones)

    @property
    def new_creators(self) -> int:
        return sum(len(v) for v in self.new_batches.values())


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def assign_batches(
    engine: Engine, usernames: Sequence[str], *, batch_size: int, platform: str = PLATFORM
) -> BatchAssignment:
    """Put every username not yet in ``creator_batches`` into fresh batches, in source order."""
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    q = load_queries("batching.sql")
    candidates = _unique(usernames)
    result = BatchAssignment()
    with engine.begin() as conn:
        conn.exec_driver_sql(q["lock"])
        # A forgotten creator (resources.erasure) is never batched again: dropped, with reason "erased".
        erased = tombstoned(conn.connection.driver_connection, candidates, platform)
        if erased:
            candidates = [u for u in candidates if u not in erased]
            hashes = sorted(hashlib.sha256(u.encode()).hexdigest() for u in erased)
            conn.exec_driver_sql(q["record_reject"], {"sources": ["tombstone"] * len(hashes),
                                                      "records": [f"{platform}:{h}" for h in hashes],
                                                      "reasons": ["erased"] * len(hashes)})
            result.erased = len(erased)
        # Set-based: the warehouse answers with the new candidates only, and takes all new members in
        # one INSERT; a tick's cost is a few statements, not one per creator (see bench/scale.py).
        fresh = [
            r[0]
            for r in conn.exec_driver_sql(
                q["unbatched_usernames"], {"platform": platform, "usernames": candidates}
            ).all()
        ]
        next_no = conn.exec_driver_sql(q["max_batch_number"]).scalar_one() + 1
        usernames_new, keys_new = [], []
        for i in range(0, len(fresh), batch_size):
            key = BATCH_KEY_FORMAT.format(next_no + i // batch_size)
            members = fresh[i : i + batch_size]
            result.new_batches[key] = members
            usernames_new.extend(members)
            keys_new.extend([key] * len(members))
        if usernames_new:
            conn.exec_driver_sql(
                q["assign"], {"platform": platform, "usernames": usernames_new, "batch_keys": keys_new}
            )
        result.all_batches = [r[0] for r in conn.exec_driver_sql(q["all_batches"]).all()]
    return result


def batch_members(engine: Engine, batch_key: str, platform: str = PLATFORM) -> list[str]:
    q = load_queries("batching.sql")
    with engine.connect() as conn:
        return [r[0] for r in conn.exec_driver_sql(q["members"], {"batch_key": batch_key, "platform": platform})]


def batch_sizes(engine: Engine) -> dict[str, int]:
    q = load_queries("batching.sql")
    with engine.connect() as conn:
        return {k: n for k, n in conn.exec_driver_sql(q["all_batches"]).all()}


def record_rejects(engine: Engine, rejects: Iterable[Reject]) -> int:
    """Upsert source rejects (file + record + reason); returns how many were recorded."""
    q = load_queries("batching.sql")
    rows = _unique_rejects(rejects)
    if rows:
        params = {"sources": [r["source"] for r in rows], "records": [r["record"] for r in rows],
                  "reasons": [r["reason"] for r in rows]}
        with engine.begin() as conn:
            conn.exec_driver_sql(q["record_reject"], params)
    return len(rows)


def record_warnings(engine: Engine, warnings: Iterable[SourceWarning]) -> int:
    """Upsert source warnings (file + record + message); returns how many were recorded."""
    rows = sorted({(w.source, w.record, w.message) for w in warnings})
    if rows:
        sources, records, messages = (list(c) for c in zip(*rows, strict=True))
        with engine.begin() as conn:
            conn.exec_driver_sql(load_queries("batching.sql")["record_warning"],
                                 {"sources": sources, "records": records, "messages": messages})
    return len(rows)


def _unique_rejects(rejects: Iterable[Reject]) -> list[dict[str, str]]:
    seen: dict[tuple[str, str], dict[str, str]] = {}
    for r in rejects:
        seen[(r.source, r.record)] = {"source": r.source, "record": r.record, "reason": r.reason}
    return list(seen.values())
