"""The new-creator sensor against a real instance and the embedded Postgres, through build_sensor_context.

Creators come from all three kinds of source: a CSV drop folder, a JSON-dump folder, and a row
inserted straight into the warehouse. Between ticks the test does what the sensor daemon does with
a ``SensorResult``: registers the requested partitions and stores the cursor.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import dagster as dg
import pytest

from assets.common.partitions import CREATOR_BATCHES
from assets.sources.sample_data import write_creators_csv
from creatorlens.settings import Settings
from orchestration.definitions import build_definitions
from orchestration.jobs import INGEST_JOB
from orchestration.sensors import NEW_CREATOR_SENSOR, source_fingerprint
from resources.sources import SourceFiles


def _dump(json_dir: Path, username: str) -> None:
    doc = {"data": {"user": {"username": username, "full_name": username.title(), "biography": "json source",
                             "edge_followed_by": {"count": 42}, "edge_owner_to_timeline_media": {"edges": []}}}}
    (json_dir / f"web_profile_info({username})_1.json").write_text(json.dumps(doc))


@pytest.fixture
def sources(tmp_path, database_url, engine):
    csv_dir, json_dir = tmp_path / "csv", tmp_path / "json"
    json_dir.mkdir()
    write_creators_csv(csv_dir / "export.csv", [f"csv.user{i}" for i in range(5)])
    _dump(json_dir, "json.user")
    with engine.begin() as conn:  # a creator another system wrote straight into the warehouse
        conn.exec_driver_sql("INSERT INTO creators (platform, username, full_name) VALUES ('instagram', 'direct.user', 'D')")
    settings = Settings(state_dir=tmp_path / "state", database_url=database_url, csv_dir=csv_dir, json_dir=json_dir,
                        batch_size=3)
    return settings, csv_dir, json_dir


class Daemon:
    """Evaluates the sensor the way the sensor daemon does: cursor and partitions carried between ticks."""

    def __init__(self, settings: Settings, instance: dg.DagsterInstance) -> None:
        self.defs = build_definitions(settings)
        self.sensor = self.defs.resolve_sensor_def(NEW_CREATOR_SENSOR)
        self.instance = instance
        self.cursor: str | None = None

    def context(self, cursor: str | None) -> dg.SensorEvaluationContext:
        return dg.build_sensor_context(instance=self.instance, cursor=cursor, definitions=self.defs,
                                       resources=self.defs.resources, sensor_name=NEW_CREATOR_SENSOR)

    def tick(self) -> dg.SensorResult | dg.SkipReason:
        result = self.sensor(self.context(self.cursor))
        if isinstance(result, dg.SensorResult):
            for request in result.dynamic_partitions_requests or []:
                self.instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
            self.cursor = result.cursor
        return result


def _requested(result) -> list[tuple[str, str]]:
    return [(r.partition_key, r.run_key) for r in result.run_requests or []]


def test_first_tick_registers_batches_and_runs_second_adds_nothing(sources, dagster_instance, engine):
    settings, _, _ = sources
    daemon = Daemon(settings, dagster_instance)
    first = daemon.tick()
    keys = ["batch-00001", "batch-00002", "batch-00003"]  # 5 CSV + 1 JSON + 1 direct, 3 per batch
    assert isinstance(first, dg.SensorResult)
    assert [list(r.partition_keys) for r in first.dynamic_partitions_requests] == [keys]
    assert first.dynamic_partitions_requests[0].partitions_def_name == CREATOR_BATCHES
    assert _requested(first) == [(k, f"{INGEST_JOB}:{k}") for k in keys]
    assert dagster_instance.get_dynamic_partitions(CREATOR_BATCHES) == keys
    # Each request resolves against the real job once its partition exists (as the daemon checks).
    job = daemon.defs.resolve_job_def(INGEST_JOB)
    for request in first.run_requests:
        resolved = request.with_resolved_tags_and_config(job, [], dagster_instance)
        assert resolved.tags["dagster/partition"] == request.partition_key
    with engine.connect() as conn:
        members = dict(conn.exec_driver_sql("SELECT username, batch_key FROM creator_batches").all())
        stamped = conn.exec_driver_sql("SELECT batch_key FROM creators WHERE username = 'direct.user'").scalar_one()
    assert len(members) == 7 and members["json.user"] and members["direct.user"] == stamped

    second = daemon.tick()  # nothing changed: the cursor short-cuts the tick
    assert isinstance(second, dg.SkipReason) and "unchanged" in second.skip_message
    daemon.cursor = None  # a full rescan (lost cursor) still adds nothing
    rescan = daemon.tick()
    assert isinstance(rescan, dg.SensorResult)
    assert not rescan.run_requests and not rescan.dynamic_partitions_requests
    assert dagster_instance.get_dynamic_partitions(CREATOR_BATCHES) == keys


def test_new_creators_later_get_a_new_batch(sources, dagster_instance, engine):
    settings, csv_dir, json_dir = sources
    daemon = Daemon(settings, dagster_instance)
    daemon.tick()
    _dump(json_dir, "late.json")  # a new dump file ...
    with engine.begin() as conn:  # ... and another direct insert
        conn.exec_driver_sql("INSERT INTO creators (platform, username) VALUES ('instagram', 'late.direct')")
    later = daemon.tick()
    assert isinstance(later, dg.SensorResult)
    assert _requested(later) == [("batch-00004", f"{INGEST_JOB}:batch-00004")]
    with engine.connect() as conn:
        late = conn.exec_driver_sql(
            "SELECT username FROM creator_batches WHERE batch_key = 'batch-00004' ORDER BY username").scalars().all()
    assert late == ["late.direct", "late.json"]
    assert isinstance(daemon.tick(), dg.SkipReason)


def test_unregistered_batches_from_a_crashed_tick_are_still_requested(sources, dagster_instance):
    """Batches written to the warehouse whose SensorResult never reached the instance are not lost."""
    settings, _, _ = sources
    daemon = Daemon(settings, dagster_instance)
    daemon.sensor(daemon.context(None))  # evaluated, but its result dropped: no partitions, no cursor stored
    assert dagster_instance.get_dynamic_partitions(CREATOR_BATCHES) == []
    retried = daemon.tick()
    assert [k for k, _ in _requested(retried)] == ["batch-00001", "batch-00002", "batch-00003"]


def test_fingerprint_moves_with_files_and_warehouse_only(sources, engine):
    settings, csv_dir, json_dir = sources
    files = SourceFiles.from_settings(settings)
    now = time.time()
    base = source_fingerprint(files, engine, now)
    assert source_fingerprint(files, engine, now) == base
    (json_dir / "notes.txt").write_text("not a dump")  # not a source file
    assert source_fingerprint(files, engine, now) == base
    export = csv_dir / "export.csv"
    st = export.stat()
    os.utime(export, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    touched = source_fingerprint(files, engine, now)
    assert touched != base
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO creators (platform, username) VALUES ('instagram', 'one.more')")
    assert source_fingerprint(files, engine, now) != touched
    # Sources it cannot see (MongoDB) are re-read at least every FULL_RESCAN_SECONDS.
    assert source_fingerprint(files, engine, now + 3600) != source_fingerprint(files, engine, now)


def test_sensor_uses_the_definitions_resources(sources):
    settings, _, _ = sources
    sensor = build_definitions(settings).resolve_sensor_def(NEW_CREATOR_SENSOR)
    assert sensor.required_resource_keys == {"warehouse", "sources"}
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING


def test_a_tick_without_the_embedded_warehouse_fails_clearly_and_the_next_one_recovers(tmp_path, dagster_instance):
    """Sensors only connect: with the server down the tick names the command, once it is up the tick works."""
    from assets.sources.sample_data import build_sample_data
    from resources import pgserver
    from resources.warehouse import WarehouseUnavailable, dispose_engines

    sample = build_sample_data(tmp_path / "sample")
    settings = Settings(state_dir=tmp_path / "state", csv_dir=sample.csv_paths[0].parent,
                        json_dir=sample.json_dirs[0], batch_size=100)
    daemon = Daemon(settings, dagster_instance)
    with pytest.raises(WarehouseUnavailable, match="creatorlens warehouse start"):
        daemon.tick()
    assert not pgserver.status(settings.resolved_pgdata).initialised  # the tick started nothing
    pgserver.start(settings.resolved_pgdata)
    try:
        result = daemon.tick()
        assert isinstance(result, dg.SensorResult) and result.run_requests
    finally:
        dispose_engines()
        pgserver.stop(settings.resolved_pgdata)
    with pytest.raises(WarehouseUnavailable):  # down again: fails again, does not start one
        daemon.tick()
