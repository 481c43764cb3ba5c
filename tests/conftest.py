"""Shared fixtures: a real embedded PostgreSQL (pgvector) for the whole session, a fresh migrated
database per test (cloned from a template, ~50 ms), a real local Dagster instance, and helpers
for real HTTP servers on 127.0.0.1.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql as pgsql

from resources.warehouse import apply_migrations, dispose_engines, embedded_server, get_engine, normalise_url

# Tests build their own settings, state folders and Dagster homes: what `make` exports for the
# demo (CREATORLENS_STATE_DIR, DAGSTER_HOME) or a developer's shell holds must not leak into them.
for _var in [v for v in os.environ if v.startswith("CREATORLENS_") or v in ("DAGSTER_HOME", "DATABASE_URL", "BATCH_SIZE")]:
    del os.environ[_var]

TEMPLATE_DB = "creatorlens_template"
_db_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[object]:
    """One embedded PostgreSQL 18 + pgvector for the session, in a private temp dir."""
    root = Path(tempfile.mkdtemp(prefix="creatorlens-pg-"))
    server = embedded_server(root / "pgdata")
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        conn.execute(pgsql.SQL("DROP DATABASE IF EXISTS {}").format(pgsql.Identifier(TEMPLATE_DB)))
        conn.execute(pgsql.SQL("CREATE DATABASE {}").format(pgsql.Identifier(TEMPLATE_DB)))
    template_engine = get_engine(server.get_uri(database=TEMPLATE_DB), migrate=False)
    apply_migrations(template_engine)
    dispose_engines()
    yield server
    dispose_engines()
    server.cleanup()


@pytest.fixture
def database_url(pg_server, request) -> Iterator[str]:
    """URL of a fresh, fully migrated database for this test (dropped afterwards)."""
    name = f"t_{os.getpid()}_{next(_db_counter)}"
    admin = pg_server.get_uri()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            pgsql.SQL("CREATE DATABASE {} TEMPLATE {}").format(pgsql.Identifier(name), pgsql.Identifier(TEMPLATE_DB))
        )
    url = normalise_url(pg_server.get_uri(database=name))
    yield url
    dispose_engines()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(pgsql.Identifier(name)))


@pytest.fixture
def engine(database_url):
    return get_engine(database_url)


@pytest.fixture
def dagster_instance(tmp_path):
    """A real, persistent local Dagster instance (SQLite) under tmp_path, with our dagster.yaml."""
    import shutil

    import dagster as dg

    from creatorlens.settings import REPO_ROOT

    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    import yaml

    overrides = yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())
    with dg.instance_for_test(temp_dir=str(home), overrides=overrides) as instance:
        yield instance
