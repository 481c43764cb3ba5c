"""End to end: sample creators → Dagster runs on a real instance → the real embedded PostgreSQL.

Covers the backbone's promises: every batch promoted, failures recorded with reasons, reruns
identical, a failing blocking check leaves the warehouse untouched and says why.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from assets.sources.sample_data import build_sample_data
from creatorlens.settings import Settings
from orchestration.definitions import build_definitions
from orchestration.jobs import INGEST_JOB
from orchestration.runs import discover_batches, materialize_batch

pytestmark = pytest.mark.e2e

TABLES = ("creators", "posts", "images", "image_duplicates", "creator_batches", "source_rejects")


def warehouse_counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: conn.exec_driver_sql(f"SELECT count(*) FROM {t}").scalar_one() for t in TABLES}  # noqa: S608


@pytest.fixture
def sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("sample")
    return build_sample_data(root)


@pytest.fixture
def settings(tmp_path: Path, database_url: str, sample) -> Settings:
    return Settings(
        state_dir=tmp_path / "state",
        database_url=database_url,
        csv_dir=sample.csv_paths[0].parent,
        json_dir=sample.json_dirs[0],
        image_workers=2,
    )


def run_all(settings: Settings, instance: dg.DagsterInstance, batch_size: int = 6):
    discovery = discover_batches(settings, instance, batch_size=batch_size)
    job = build_definitions(settings).resolve_job_def(INGEST_JOB)
    return discovery, {k: materialize_batch(job, instance, k) for k in discovery.assignment.all_batches}


def test_sample_batches_reach_the_warehouse_with_failures_recorded(settings, dagster_instance, engine, sample):
    discovery, runs = run_all(settings, dagster_instance)
    assert len(discovery.assignment.all_batches) == 3
    assert all(r.success and r.promoted and not r.failed_checks for r in runs.values()), runs

    counts = warehouse_counts(engine)
    assert counts["creators"] == sample.n_creators_expected == 14
    assert counts["creator_batches"] == 14
    # 2 malformed CSV rows, 1 malformed JSON, 1 file without a username. The row whose follower count
    # cannot be read ('12abc') is kept with followers empty and a warning (issue 13), not rejected.
    assert counts["source_rejects"] == 4
    with engine.connect() as conn:
        reasons = dict(conn.exec_driver_sql(
            "SELECT error_reason, count(*) FROM images WHERE status = 'failed' GROUP BY 1").all())
        ok_without_hash = conn.exec_driver_sql(
            "SELECT count(*) FROM images WHERE status = 'ok' AND (pdq_hash IS NULL OR sha256 IS NULL)").scalar_one()
        repost_pair = conn.exec_driver_sql(
            """SELECT d.kind, d.distance FROM image_duplicates d
               JOIN images a ON a.image_key = d.image_key_a JOIN images b ON b.image_key = d.image_key_b
               WHERE a.source_uri LIKE '%%/astronaut.jpg' AND b.source_uri LIKE '%%/astronaut_repost.jpg'
                  OR a.source_uri LIKE '%%/astronaut_repost.jpg' AND b.source_uri LIKE '%%/astronaut.jpg'""").all()
        flip_pairs = conn.exec_driver_sql(
            """SELECT DISTINCT d.kind, d.transform FROM image_duplicates d
               JOIN images a ON a.image_key = d.image_key_a JOIN images b ON b.image_key = d.image_key_b
               WHERE a.source_uri LIKE '%%astronaut_flip.jpg' OR b.source_uri LIKE '%%astronaut_flip.jpg'""").all()
        cross_batch = conn.exec_driver_sql(
            """SELECT count(*) FROM image_duplicates d JOIN images a ON a.image_key = d.image_key_a
               JOIN images b ON b.image_key = d.image_key_b WHERE a.batch_key <> b.batch_key""").scalar_one()
    expected = {}
    for reason in sample.broken_image_files.values():
        expected[reason] = expected.get(reason, 0) + 1
    expected["not_found"] = expected.get("not_found", 0) + len(sample.missing_image_refs)
    assert reasons == expected
    assert ok_without_hash == 0
    assert repost_pair == [("exact", 0)]
    # The mirrored repost is far for the plain PDQ hash and found through its flipped one.
    assert flip_pairs == [("near", "flip_horizontal")]
    assert cross_batch > 0

    # The UI shows counts, failures by reason, throughput and a preview on the images asset.
    event = dagster_instance.get_latest_materialization_event(dg.AssetKey(["images", "creator_images"]))
    meta = event.asset_materialization.metadata
    assert {"images", "failed", "failures_by_reason", "images_per_second", "preview"} <= set(meta)
    assert "data:image/jpeg;base64," in meta["preview"].value


def test_rerunning_every_partition_changes_no_row_count(settings, dagster_instance, engine):
    _, first = run_all(settings, dagster_instance)
    before = warehouse_counts(engine)
    with engine.connect() as conn:
        images_before = conn.exec_driver_sql("SELECT image_key, sha256, status, updated_at FROM images ORDER BY 1").all()
    discovery, second = run_all(settings, dagster_instance)
    assert discovery.assignment.new_creators == 0 and discovery.registered == []
    assert all(r.promoted for r in second.values())
    assert warehouse_counts(engine) == before
    with engine.connect() as conn:
        images_after = conn.exec_driver_sql("SELECT image_key, sha256, status, updated_at FROM images ORDER BY 1").all()
        promotions = conn.exec_driver_sql("SELECT count(*) FROM promotions").scalar_one()
    assert images_after == images_before  # unchanged rows are not even rewritten
    assert promotions == 6


def test_failing_blocking_check_leaves_the_warehouse_untouched(settings, dagster_instance, engine):
    strict = settings.model_copy(update={"max_failure_rate": 0.0})
    discover_batches(strict, dagster_instance, batch_size=6)
    job = build_definitions(strict).resolve_job_def(INGEST_JOB)
    run = materialize_batch(job, dagster_instance, "batch-00001")

    assert not run.promoted and run.failed_checks == ["creator_images_quality"]
    with engine.connect() as conn:
        for table in ("creators", "posts", "images", "image_duplicates", "promotions"):
            assert conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one() == 0, table  # noqa: S608
    # ... and the instance records why, for the UI.
    check_key = dg.AssetCheckKey(dg.AssetKey(["images", "creator_images"]), "creator_images_quality")
    records = dagster_instance.event_log_storage.get_asset_check_execution_history(check_key, limit=1)
    evaluation = records[0].event.dagster_event.event_specific_data
    assert evaluation.passed is False
    assert evaluation.metadata["failure_rate"].value > 0.0
    assert "expect_column_values_to_be_in_set" in evaluation.description
