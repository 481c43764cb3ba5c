"""End to end: one sample batch through the whole graph (ingest → vision stages → blocking checks →
promotion) on a real Dagster instance into the embedded warehouse, with the bundled CPU models and a
tiny ArcFace-shaped ONNX model standing in for the production face embedder.

The batch is the one holding ``pixel.thief`` (four astronaut reposts, two captioned photos) and
``lab.slides`` (microscope slides and textures, plus a post whose image is gone).
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
from tests.support.models import tiny_arcface_onnx

pytestmark = pytest.mark.e2e

VISION_TABLES = ("image_vision", "persons", "keypoints", "ocr_texts", "faces")


def _rows(engine: sa.Engine, sql: str) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql(sql).all()]


def _counts(engine: sa.Engine) -> dict[str, int]:
    return {t: _rows(engine, f"SELECT count(*) FROM {t}")[0][0] for t in VISION_TABLES}  # noqa: S608


def test_a_sample_batch_reaches_the_vision_tables_and_reruns_change_nothing(
    tmp_path: Path, database_url: str, engine: sa.Engine, dagster_instance: dg.DagsterInstance
) -> None:
    sample = build_sample_data(tmp_path / "sample")
    settings = Settings(
        state_dir=tmp_path / "state", database_url=database_url, csv_dir=sample.csv_paths[0].parent,
        json_dir=sample.json_dirs[0], image_workers=2, decode_workers=1, device="cpu",
        model_weights={"face_embedder": str(tiny_arcface_onnx(tmp_path / "models" / "w600k_r50.onnx"))},
    )
    discover_batches(settings, dagster_instance, batch_size=6)
    (batch,) = _rows(engine, "SELECT batch_key FROM creator_batches WHERE username = 'pixel.thief'")[0]
    job = build_definitions(settings).resolve_job_def(INGEST_JOB)

    run = materialize_batch(job, dagster_instance, batch)
    assert run.success and run.promoted and not run.failed_checks, run

    ok_images = _rows(engine, f"SELECT count(*) FROM images WHERE batch_key = '{batch}' AND status = 'ok'")[0][0]
    counts = _counts(engine)
    assert counts["image_vision"] == ok_images >= 10  # one row per ok image, nothing dropped
    # The four astronaut reposts: a person with a pose, head above hips (arrays are 1-based: nose 1,
    # hips 24/25; a hip outside the crop is NULL), and her face.
    people = _rows(engine, """
        SELECT i.source_uri, k.y[1] < coalesce(k.y[24], k.y[25]), p.pose_status, p.model_version, k.model_version
        FROM persons p JOIN keypoints k USING (image_key, person_idx) JOIN images i USING (image_key)""")
    assert len(people) >= 4 and all(head_above_hips for _, head_above_hips, *_ in people)
    assert sum("astronaut" in uri for uri, *_ in people) >= 4
    assert {(p[2], p[3], p[4]) for p in people} == {
        ("ok", "mediapipe-pose-person-detector@0.10.14", "mediapipe-pose-full@0.10.14")}
    faces = _rows(engine, """
        SELECT f.username, f.cluster_id, vector_dims(f.embedding), f.embedding_model
        FROM faces f JOIN images i USING (image_key) WHERE i.source_uri LIKE '%%astronaut%%'""")
    assert len(faces) >= 4 and all(f[2] == 512 and f[3].startswith("w600k_r50.onnx@sha256:") for f in faces)
    assert {(f[0], f[1]) for f in faces} == {("pixel.thief", 0)}  # her reposts: one identity cluster
    # The rendered captions are read back and searchable through the tsvector index.
    found = _rows(engine, """SELECT i.source_uri, o.text FROM ocr_texts o JOIN images i USING (image_key)
                             WHERE o.tsv @@ plainto_tsquery('simple', 'repost')""")
    assert [(Path(uri).name, text.lower()) for uri, text in found] == [("astronaut_caption.jpg", "#repost @astro.sam")]
    captions = _rows(engine, """SELECT i.source_uri FROM ocr_texts o JOIN images i USING (image_key)
                                WHERE o.text ILIKE '%%fluffy%%'""")  # PP-OCR drops the space: "sofluffy"
    assert [Path(uri).name for (uri,) in captions] == ["chelsea_caption.jpg"]
    statuses = dict(_rows(engine, "SELECT persons_status, count(*) FROM image_vision GROUP BY 1"))
    assert statuses["ok"] >= 4 and statuses["no_person"] >= 4
    shots = _rows(engine, "SELECT DISTINCT shot_type FROM image_vision WHERE person_count > 0")
    assert shots == [("half-body",)]
    vision_counts = _rows(engine, f"SELECT counts -> 'vision' -> 'staged' FROM promotions "
                                  f"WHERE batch_key = '{batch}' AND run_id = '{run.run_id}'")[0][0]
    assert vision_counts == {t: counts[t] for t in VISION_TABLES}

    # The UI shows counts, failures by reason, throughput and model versions per stage.
    for key in (["vision", "persons"], ["vision", "keypoints"], ["vision", "ocr"], ["vision", "faces"]):
        meta = dagster_instance.get_latest_materialization_event(dg.AssetKey(key)).asset_materialization.metadata
        assert {"images", "failed", "failures_by_reason", "images_per_second", "model_versions"} <= set(meta), key

    before = _rows(engine, "SELECT image_key, person_idx, updated_at FROM persons ORDER BY 1, 2")
    again = materialize_batch(job, dagster_instance, batch)
    assert again.success and again.promoted
    assert _counts(engine) == counts
    assert _rows(engine, "SELECT image_key, person_idx, updated_at FROM persons ORDER BY 1, 2") == before
