"""Pool limit rows exist before runs claim slots, on the production instance's PostgreSQL storage.

Dagster creates a pool's limit row lazily, on the first slot claim; on PostgreSQL two runs doing
that at once race (dagster-io/dagster#33552): the loser's INSERT hits the unique key, PostgreSQL
aborts its transaction, its follow-up UPDATE fails and a good batch's step fails with
``InFailedSqlTransaction``. It failed batch-00002 of tests/integration/test_daemon.py's prod
flavour under load. ``ensure_pool_limits`` (called by the sensors and ``creatorlens run``, one at a
time) creates the rows first. Here on the real deploy/dagster.prod.yaml storage, on a real server.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import psycopg
import pytest
import yaml
from psycopg import sql as pgsql

from assets.common.metadata import GPU_POOL
from creatorlens.settings import REPO_ROOT, Settings
from orchestration.definitions import build_definitions
from orchestration.jobs import INGEST_JOB
from orchestration.runs import ensure_pool_limits, job_pools
from orchestration.sensors import dead_run_sensor
from resources import pgserver


@pytest.fixture
def prod_instance(pg_server, tmp_path, monkeypatch):
    """deploy/dagster.prod.yaml's storage (dagster-postgres) on a fresh database of the test server."""
    name = f"dagster_pools_{os.getpid()}"
    with psycopg.connect(pg_server.get_uri(), autocommit=True) as conn:
        conn.execute(pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(pgsql.Identifier(name)))
        conn.execute(pgsql.SQL("CREATE DATABASE {}").format(pgsql.Identifier(name)))
    config = yaml.safe_load((REPO_ROOT / "deploy" / "dagster.prod.yaml").read_text())
    db = config["storage"]["postgres"]["postgres_db"]
    db["params"] = {"host": str(pgserver.status(Path(pg_server.pgdata)).socket_dir)}
    config["run_launcher"] = {"module": "dagster.core.launcher", "class": "DefaultRunLauncher"}
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(config))
    for var, value in {"DAGSTER_PG_HOST": "localhost", "DAGSTER_PG_USER": "postgres",
                       "DAGSTER_PG_PASSWORD": "", "DAGSTER_PG_DB": name}.items():
        monkeypatch.setenv(var, value)
    instance = dg.DagsterInstance.from_config(str(tmp_path))
    try:
        yield instance
    finally:
        instance.dispose()
        with psycopg.connect(pg_server.get_uri(), autocommit=True) as conn:
            conn.execute(pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(pgsql.Identifier(name)))


@pytest.fixture
def defs(tmp_path) -> dg.Definitions:
    return build_definitions(Settings(state_dir=tmp_path / "state"))


def _limits(instance: dg.DagsterInstance) -> dict[str, tuple[int, bool]]:
    return {p.name: (p.limit, p.from_default) for p in instance.event_log_storage.get_pool_limits()}


def _claim_would_initialise(instance: dg.DagsterInstance, pool: str) -> bool:
    """The condition under which a run worker's slot claim calls initialize_concurrency_limit_to_default
    (dagster/_core/execution/plan/instance_concurrency_context.py), i.e. can race."""
    default = instance.global_op_concurrency_default_limit
    info = {p.name: p for p in instance.event_log_storage.get_pool_limits()}.get(pool)
    return (info is None and default is not None) or (info is not None and info.from_default and info.limit != default)


def test_the_ingest_job_claims_the_gpu_pool(defs):
    job = defs.resolve_job_def(INGEST_JOB)
    assert GPU_POOL in job_pools(job)


def test_pool_rows_are_created_once_at_the_default_and_operator_limits_are_kept(prod_instance, defs):
    instance = prod_instance
    pools = job_pools(defs.resolve_job_def(INGEST_JOB))
    assert instance.global_op_concurrency_default_limit == 1  # the prod file's pools.default_limit
    assert _limits(instance) == {}
    assert all(_claim_would_initialise(instance, p) for p in pools)  # a fresh instance: every claim races

    assert sorted(ensure_pool_limits(instance, pools)) == sorted(pools)
    assert _limits(instance) == dict.fromkeys(pools, (1, True))
    assert not any(_claim_would_initialise(instance, p) for p in pools)
    assert ensure_pool_limits(instance, pools) == []  # idempotent

    # An operator's `dagster instance concurrency set gpu 3` (or the UI's) is never reset to the default.
    instance.event_log_storage.set_concurrency_slots(GPU_POOL, 3)
    assert ensure_pool_limits(instance, pools) == []
    assert _limits(instance)[GPU_POOL] == (3, False)
    assert instance.event_log_storage.get_concurrency_info(GPU_POOL).slot_count == 3


def test_the_dead_run_sensor_creates_the_rows_on_its_first_tick(prod_instance, defs):
    context = dg.build_sensor_context(instance=prod_instance, definitions=defs)
    result = dead_run_sensor(context)
    assert isinstance(result, dg.SkipReason) and result.skip_message == "no dead runs"
    assert _limits(prod_instance) == dict.fromkeys(job_pools(defs.resolve_job_def(INGEST_JOB)), (1, True))
