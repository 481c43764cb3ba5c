"""PostgreSQL + pgvector warehouse: embedded by default, any server via ``DATABASE_URL``.

* No ``DATABASE_URL``: the embedded PostgreSQL 18 + pgvector of the state folder
  (``.creatorlens/pgdata``), which :mod:`resources.pgserver` starts and stops explicitly. This
  module only connects to it: a process that finds it not running gets
  :class:`~resources.pgserver.WarehouseUnavailable` with the command that starts it.
* Migrations: ``sql/NNN_name.sql`` files applied in order, once each, recorded with their
  checksum in ``schema_migrations``. A changed, already-applied file is an error, not a silent skip.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import psycopg
import sqlalchemy as sa
from pydantic import Field
from sqlalchemy.engine import Engine

from creatorlens.settings import SQL_DIR, Settings
from resources import pgserver
from resources.pgserver import WarehouseUnavailable

__all__ = ["Warehouse", "WarehouseUnavailable", "apply_migrations", "dispose_engines", "embedded_server",
           "engine_from_settings", "get_engine", "normalise_url"]

log = logging.getLogger(__name__)

_MIGRATION_RE = re.compile(r"^(\d{3,})_([a-z0-9_]+)\.sql$")
_MIGRATION_LOCK_ID = 7_240_001  # pg_advisory_xact_lock key shared by every migrating process

_lock = threading.Lock()
_engines: dict[str, Engine] = {}
_migrated: set[str] = set()


class MigrationError(RuntimeError):
    """A migration file is malformed, or was edited after it was applied."""


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def discover_migrations(sql_dir: Path = SQL_DIR) -> list[Migration]:
    """Ordered ``NNN_name.sql`` files; duplicate version numbers are refused."""
    found: dict[str, Migration] = {}
    for path in sorted(sql_dir.glob("*.sql")):
        m = _MIGRATION_RE.match(path.name)
        if not m:
            raise MigrationError(f"{path.name}: migration files must be named NNN_lowercase_name.sql")
        version, name = m.groups()
        if version in found:
            raise MigrationError(f"duplicate migration version {version}: {found[version].path.name}, {path.name}")
        found[version] = Migration(version, name, path)
    return [found[v] for v in sorted(found, key=int)]


def apply_migrations(engine: Engine, sql_dir: Path = SQL_DIR) -> list[str]:
    """Apply pending migrations; return the versions applied now. Safe to call from many processes."""
    applied_now: list[str] = []
    with engine.begin() as conn:
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK_ID,))
        conn.exec_driver_sql(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version    text PRIMARY KEY,
                   name       text NOT NULL,
                   checksum   text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = dict(conn.exec_driver_sql("SELECT version, checksum FROM schema_migrations").all())
        for mig in discover_migrations(sql_dir):
            if mig.version in done:
                if done[mig.version] != mig.checksum:
                    raise MigrationError(
                        f"migration {mig.path.name} changed after it was applied; add a new migration instead"
                    )
                continue
            log.info("applying migration %s", mig.path.name)
            conn.exec_driver_sql(mig.sql)
            conn.exec_driver_sql(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                (mig.version, mig.name, mig.checksum),
            )
            applied_now.append(mig.version)
    return applied_now


class EmbeddedServer:
    """A started embedded server, for tests and benchmarks that want one of their own."""

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata
        self.started = pgserver.start(pgdata)[1]

    def get_uri(self, database: str | None = None, driver: str | None = None) -> str:
        return pgserver.admin_url(self.pgdata, database or "postgres", driver=driver)

    def cleanup(self) -> None:
        """Stop the server if this handle started it."""
        if self.started:
            pgserver.stop(self.pgdata)


def embedded_server(pgdata: Path) -> EmbeddedServer:
    """Start (or reuse) the embedded PostgreSQL under ``pgdata``: for tests and benchmarks."""
    return EmbeddedServer(pgdata)


def normalise_url(url: str) -> str:
    """Force the psycopg 3 driver for plain ``postgresql://`` / ``postgres://`` URLs."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def get_engine(database_url: str | None = None, pgdata: Path | None = None, *, migrate: bool = True) -> Engine:
    """Process-wide engine per URL (the running embedded server when ``database_url`` is None), migrated once.

    The embedded server's URL is read from its ``postmaster.pid`` on every call, so a process
    that asked while it was down gets :class:`WarehouseUnavailable` and succeeds once it is back.
    """
    if database_url:
        url = normalise_url(database_url)
    else:
        if pgdata is None:
            raise ValueError("an embedded warehouse needs a pgdata directory")
        url = pgserver.url(pgdata)
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = sa.create_engine(url, pool_size=5, max_overflow=5)
            sa.event.listen(engine, "checkout", _liveness_check(engine.dialect))
            _engines[url] = engine
        if migrate and url not in _migrated:
            try:
                apply_migrations(engine)
            except sa.exc.OperationalError as exc:
                if database_url:
                    raise
                raise WarehouseUnavailable(f"cannot reach the embedded warehouse at {pgdata}: {exc.orig}") from exc
            _migrated.add(url)
        return engine


def _liveness_check(dialect):
    """Pessimistic disconnect handling without a round trip per checkout (``pool_pre_ping`` sent one).

    A pooled connection lies idle between transactions, so the server has nothing to say on it: if
    its socket is readable, the server has closed it or sent its last words (a restart, an
    administrator's ``pg_terminate_backend``, an idle time-out). Raising ``DisconnectionError``
    makes the pool discard it and check out another (SQLAlchemy's documented checkout hook). Over
    TLS, where the socket can hold a record that is not a message, the dialect's ping (a round trip)
    stays. A connection that dies silently (a network that drops packets) is found by its first
    query, as it was with ``pool_pre_ping``, whose ping would have hung the same way.
    """
    import select

    def check(dbapi_conn, record, proxy) -> None:
        try:
            pgconn = dbapi_conn.pgconn
            if dbapi_conn.closed or dbapi_conn.broken or pgconn.status != psycopg.pq.ConnStatus.OK:
                raise sa.exc.DisconnectionError("the connection is closed")
            if pgconn.ssl_in_use:
                dialect.do_ping(dbapi_conn)
                return
            poller = select.poll()  # not select.select: a Dagster process can hold fds above 1024
            poller.register(pgconn.socket, select.POLLIN | select.POLLERR | select.POLLHUP)
            if poller.poll(0):
                raise sa.exc.DisconnectionError("the server closed the connection")
        except (psycopg.Error, OSError) as exc:
            raise sa.exc.DisconnectionError(str(exc)) from exc

    return check


def engine_from_settings(settings: Settings, *, migrate: bool = True) -> Engine:
    return get_engine(settings.database_url, settings.resolved_pgdata, migrate=migrate)


def dispose_engines() -> None:
    """Close every pooled connection (tests, and before a process forks)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
        _migrated.clear()


def _after_fork_in_child() -> None:
    """A forked child must not use (or close) the parent's pooled connections: SQLAlchemy's recipe."""
    for engine in _engines.values():
        engine.dispose(close=False)
    _engines.clear()
    _migrated.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


class Warehouse(dg.ConfigurableResource):
    """The PostgreSQL warehouse. Leave ``database_url`` empty for the embedded server."""

    database_url: str | None = Field(default=None, description="SQLAlchemy/libpq URL; empty = embedded.")
    pgdata_dir: str = Field(default=".creatorlens/pgdata", description="Embedded server data directory.")

    @classmethod
    def from_settings(cls, settings: Settings) -> Warehouse:
        return cls(database_url=settings.database_url, pgdata_dir=str(settings.resolved_pgdata))

    def get_engine(self) -> Engine:
        return get_engine(self.database_url, Path(self.pgdata_dir))

    @contextmanager
    def raw_connection(self) -> Iterator[psycopg.Connection]:
        """A psycopg 3 connection from the pool (for COPY); caller manages the transaction."""
        fairy = self.get_engine().raw_connection()
        try:
            yield fairy.driver_connection  # type: ignore[misc]
        finally:
            fairy.close()
