"""Object tags end to end: a sample batch through ``vision/objects`` (a random-weight YOLOv8n built
from its config, so every detection is random but real ultralytics output) into ``detected_objects``
with categories from ``tag_category_map``; an edit of the map, re-applied by the
``remap_object_categories`` job without reading an image; the search category filter follows it.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from assets.common.keys import (
    CREATOR_IMAGES,
    IMAGE_DUPLICATES,
    OBJECT_TAGS,
    OBJECT_TAGS_PROMOTED,
    PROMOTED_BATCH,
    RAW_POSTS,
    RAW_PROFILES,
)
from assets.sources.sample_data import build_sample_data
from assets.tagging.search import SearchFilters, VectorSearch
from creatorlens.settings import Settings
from orchestration.definitions import build_definitions
from orchestration.jobs import INGEST_JOB, REMAP_OBJECTS_JOB
from orchestration.runs import discover_batches, materialize_batch
from resources.warehouse import get_engine

pytestmark = pytest.mark.e2e

SELECTION = [RAW_PROFILES, RAW_POSTS, CREATOR_IMAGES, IMAGE_DUPLICATES, PROMOTED_BATCH, OBJECT_TAGS,
             OBJECT_TAGS_PROMOTED]


@pytest.fixture
def offline_ultralytics(tmp_path, monkeypatch):
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "ultralytics"))
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    monkeypatch.setenv("YOLO_AUTOINSTALL", "false")
    monkeypatch.setenv("YOLO_VERBOSE", "false")


def _rows(engine: sa.Engine, sql: str, **params) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql(sql, params).all()]


def _category_images(database_url: str, category: str) -> set[str]:
    """The images the search's category filter keeps (the planner-friendly fragments VectorSearch composes)."""
    search = VectorSearch()
    stmt = search.compose("SELECT i.image_key FROM images i WHERE {filters}", filters=SearchFilters(category=category))
    with get_engine(database_url).connect() as conn:
        pg = conn.connection.driver_connection
        return {r[0] for r in pg.execute(stmt, search.params(pg, SearchFilters(category=category), None)).fetchall()}


def test_objects_are_tagged_mapped_remapped_and_filtered(
    tmp_path: Path, database_url: str, engine: sa.Engine, dagster_instance: dg.DagsterInstance, offline_ultralytics
) -> None:
    sample = build_sample_data(tmp_path / "sample")
    # A random detector scores around 1e-4: a floor far below that makes it report (random) objects.
    settings = Settings(state_dir=tmp_path / "state", database_url=database_url, csv_dir=sample.csv_paths[0].parent,
                        json_dir=sample.json_dirs[0], image_workers=2, decode_workers=1, device="cpu",
                        vision_object_min_confidence=1e-6, model_weights={"object_detector": "yolov8n.yaml"})
    discover_batches(settings, dagster_instance, batch_size=6)
    ((batch,),) = _rows(engine, "SELECT batch_key FROM creator_batches WHERE username = 'pixel.thief'")
    defs = build_definitions(settings)
    run = materialize_batch(defs.resolve_job_def(INGEST_JOB), dagster_instance, batch, assets=SELECTION)
    assert run.success and not run.failed_checks, run

    objects = _rows(engine, "SELECT d.label, d.category, d.model_version, d.confidence FROM detected_objects d")
    ok_images = _rows(engine, "SELECT count(*) FROM images WHERE batch_key = %(b)s AND status = 'ok'", b=batch)[0][0]
    with_objects = _rows(engine, "SELECT count(DISTINCT image_id) FROM detected_objects")[0][0]
    assert objects and 0 < with_objects <= ok_images
    assert {o[2] for o in objects} == {"yolov8n.yaml@random-init"}  # rows never claim trained weights
    assert all(0 <= o[3] <= 1 for o in objects)
    mapped = dict(_rows(engine, "SELECT label, category FROM tag_category_map"))
    assert len(mapped) == 80 and {"electronics", "food", "documents", "people", "vehicles", "animals"} <= set(
        mapped.values())
    assert all(category == mapped[label] for label, category, *_ in objects)  # COCO's labels are all mapped

    # A re-run replaces the batch's rows: nothing is duplicated.
    again = materialize_batch(defs.resolve_job_def(INGEST_JOB), dagster_instance, batch, assets=[OBJECT_TAGS_PROMOTED])
    assert again.success and _rows(engine, "SELECT count(*) FROM detected_objects")[0][0] == len(objects)

    # A reviewer moves the most frequent label to a new category; the stored tags are stale until the job runs.
    (label, n_label), *_ = _rows(engine, "SELECT label, count(*) FROM detected_objects GROUP BY 1 ORDER BY 2 DESC, 1")
    old = mapped[label]
    images_before = _rows(engine, "SELECT image_id, updated_at FROM images ORDER BY 1")
    label_images = {r[0] for r in _rows(engine, """SELECT DISTINCT i.image_key FROM detected_objects d
                                                   JOIN images i USING (image_id) WHERE d.label = %(l)s""", l=label)}
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE tag_category_map SET category = 'gadgets', updated_by = 'rita' "
                             "WHERE label = %(l)s", {"l": label})
    assert _category_images(database_url, "gadgets") == set()  # stale: not re-mapped yet
    result = defs.resolve_job_def(REMAP_OBJECTS_JOB).execute_in_process(instance=dagster_instance)
    assert result.success
    assert [e.step_key for e in result.all_events if e.event_type_value == "STEP_START"] == [
        "warehouse__object_categories"]  # no image, no model: one SQL step
    (mat,) = result.asset_materializations_for_node("warehouse__object_categories")
    meta = {k: v.value for k, v in mat.metadata.items()}
    assert meta["changed"] == n_label and meta["objects"] == len(objects)
    assert "gadgets" not in meta["before"] and meta["after"]["gadgets"]["objects"] == n_label
    assert meta["before"][old]["objects"] - meta["after"].get(old, {"objects": 0})["objects"] == n_label
    assert _rows(engine, "SELECT image_id, updated_at FROM images ORDER BY 1") == images_before
    # The search's category filter follows the map: the label's images are in 'gadgets' now.
    assert _category_images(database_url, "gadgets") == label_images
    # Running it again changes nothing.
    second = defs.resolve_job_def(REMAP_OBJECTS_JOB).execute_in_process(instance=dagster_instance)
    (mat2,) = second.asset_materializations_for_node("warehouse__object_categories")
    assert mat2.metadata["changed"].value == 0
