"""Warehouse resource against the real embedded PostgreSQL: migrations, extension, constraints."""

from __future__ import annotations

import shutil
import time

import psycopg
import pytest
import sqlalchemy as sa

from creatorlens.settings import SQL_DIR
from resources.warehouse import MigrationError, apply_migrations, discover_migrations, get_engine


def test_migrations_are_ordered_recorded_and_idempotent(engine):
    versions = [m.version for m in discover_migrations()]
    assert versions == sorted(versions, key=int) and versions[0] == "001"
    with engine.connect() as conn:
        recorded = [r[0] for r in conn.exec_driver_sql("SELECT version FROM schema_migrations ORDER BY version")]
    assert recorded == versions
    assert apply_migrations(engine) == []  # second run: nothing to do


def test_pgvector_extension_is_installed(engine):
    with engine.connect() as conn:
        ext = conn.exec_driver_sql("SELECT extversion FROM pg_extension WHERE extname = 'vector'").scalar_one()
        distance = conn.exec_driver_sql("SELECT '[1,0]'::vector <=> '[0,1]'::vector").scalar_one()
    assert ext.startswith("0.8")
    assert distance == pytest.approx(1.0)


def test_new_migration_applies_once_and_edited_migration_is_refused(engine, tmp_path):
    sql_dir = tmp_path / "sql"
    shutil.copytree(SQL_DIR, sql_dir, ignore=shutil.ignore_patterns("queries"))
    (sql_dir / "900_extra.sql").write_text("CREATE TABLE extra_table (id int);")
    assert apply_migrations(engine, sql_dir) == ["900"]
    assert apply_migrations(engine, sql_dir) == []
    (sql_dir / "900_extra.sql").write_text("CREATE TABLE extra_table (id bigint);")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        apply_migrations(engine, sql_dir)


def test_badly_named_migration_is_refused(tmp_path):
    (tmp_path / "1_x.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="NNN_lowercase_name"):
        discover_migrations(tmp_path)


def test_ok_images_must_carry_hashes(engine):
    with pytest.raises(sa.exc.IntegrityError, match="images_ok_has_hashes"), engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO images (image_key, platform, post_id, username, batch_key, rank, engagement, status) "
            "VALUES ('instagram:1', 'instagram', '1', 'a', 'batch-00001', 1, 0, 'ok')"
        )


def test_embedded_engine_is_reused_per_process(database_url):
    assert get_engine(database_url) is get_engine(database_url)


def _backend_pid(engine) -> int:
    with engine.connect() as conn:
        return conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()


def test_a_checkout_costs_no_round_trip_and_a_killed_connection_is_replaced(database_url):
    """The pool checks a connection by its socket, not with a ping per checkout (pool_pre_ping's SELECT 1);
    a connection the server ended (a restart, pg_terminate_backend) is still never handed out."""
    engine = get_engine(database_url, migrate=False)
    pid = _backend_pid(engine)
    with psycopg.connect(database_url.replace("+psycopg", ""), autocommit=True) as admin:
        def last_statement() -> str:
            return admin.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()[0]

        before = last_statement()  # the pool's ROLLBACK when the connection came back
        for _ in range(20):
            engine.connect().close()  # check out and back in, no statement
        assert last_statement() == before  # with pool_pre_ping: the ping's "SELECT 1"
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        deadline = time.monotonic() + 5
        while admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()[0]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    replacement = _backend_pid(engine)  # would raise OperationalError on the dead connection
    assert replacement != pid
