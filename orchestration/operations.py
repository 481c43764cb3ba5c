"""Warehouse side of operations: creators without a batch, failed runs, batch states.

Used by the new-creator sensor, the run-failure sensor and ``creatorlens status``. No Dagster
here: the callers pass an engine and plain values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Engine

from creatorlens.fields import PLATFORM
from creatorlens.queries import load_queries

MAX_ERROR_CHARS = 4000


def unbatched_creators(engine: Engine, platform: str = PLATFORM) -> list[str]:
    """Usernames in ``creators`` that no batch holds (inserted directly), oldest first."""
    q = load_queries("operations.sql")
    with engine.connect() as conn:
        return [r[0] for r in conn.exec_driver_sql(q["unbatched_creators"], {"platform": platform})]


def stamp_batches(engine: Engine) -> int:
    """Copy the assigned batch onto directly inserted creators (``batch_key IS NULL``)."""
    q = load_queries("operations.sql")
    with engine.begin() as conn:
        return conn.exec_driver_sql(q["stamp_batches"]).rowcount


def change_marker(engine: Engine) -> int:
    """The highest creator id: moves whenever a creator is added to the warehouse."""
    q = load_queries("operations.sql")
    with engine.connect() as conn:
        return int(conn.exec_driver_sql(q["change_marker"]).scalar_one())


@dataclass(frozen=True)
class BatchFailure:
    run_id: str
    batch_key: str | None
    job_name: str
    failed_steps: Sequence[str]
    error_class: str | None
    error: str
    failed_at: datetime


def open_flags_by_batch(engine: Engine) -> list[tuple[str, int, int]]:
    """(batch, newest open flag id, open flags) for each batch with images flagged for re-analysis."""
    with engine.connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql(load_queries("operations.sql")["open_flags_by_batch"]).all()]


def record_failure(engine: Engine, failure: BatchFailure) -> None:
    """Upsert one failed run (keyed on run id, so a re-delivered failure is one row)."""
    q = load_queries("operations.sql")
    row = {
        "run_id": failure.run_id,
        "batch_key": failure.batch_key,
        "job_name": failure.job_name,
        "failed_steps": list(failure.failed_steps),
        "error_class": failure.error_class,
        "error": failure.error[:MAX_ERROR_CHARS],
        "failed_at": failure.failed_at,
    }
    with engine.begin() as conn:
        conn.exec_driver_sql(q["record_failure"], row)


def batch_states(engine: Engine) -> list[tuple[str, int, datetime | None, datetime | None]]:
    """(batch, creators, last promoted, last failed) for every batch in the warehouse."""
    q = load_queries("operations.sql")
    with engine.connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql(q["batch_states"]).all()]


def last_failures(engine: Engine, limit: int = 10) -> list[tuple]:
    q = load_queries("operations.sql")
    with engine.connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql(q["last_failures"], {"limit": limit}).all()]


def retryable_failed_images(engine: Engine, batch_keys: Sequence[str]) -> dict[str, int]:
    """Batch → images that failed transiently (network, timeout, 429/5xx) and deserve another try."""
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(load_queries("operations.sql")["retryable_failed_images"],
                                    {"batch_keys": list(batch_keys)}).all()
    return {batch: n for batch, n in rows}
