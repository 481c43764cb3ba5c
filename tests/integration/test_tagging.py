"""Tagging end to end: one sample batch through a real Dagster instance into the embedded PostgreSQL.

Without weights the tagging assets skip and say why; with a tiny SigLIP built here the batch gets
embeddings, tags, review items and creator tags; a rerun writes nothing new; a tiny OpenCLIP
(another model version) adds its own rows beside SigLIP's, and every query reads one version.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import psycopg
import pytest
import sqlalchemy as sa
from psycopg import sql as pgsql

from assets.sources.sample_data import build_sample_data
from assets.tagging.search import SearchError, nearest_images, search_images_by_image, search_images_by_text
from assets.tagging.store import vector_index_name
from assets.tagging.taxonomy import TaxonomyError, load_taxonomy
from creatorlens.queries import load_queries
from creatorlens.settings import Settings
from orchestration.definitions import ASSET_CHECKS, ASSETS, JOBS, build_definitions, build_resources
from orchestration.jobs import INGEST_JOB
from orchestration.runs import discover_batches, materialize_batch
from resources.models import ModelRegistry
from resources.warehouse import get_engine
from tests.support.tiny_models import build_tiny_openclip, build_tiny_siglip

pytestmark = pytest.mark.e2e

BATCH = "batch-00001"
TAG_TABLES = ("image_embeddings", "image_tags", "tag_review_queue", "creator_tags", "tag_analysis_history")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny")
    return {"siglip": build_tiny_siglip(root / "tiny-siglip"), "openclip": build_tiny_openclip(root / "tiny-openclip")}


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    sample = build_sample_data(tmp_path / "sample")
    return Settings(state_dir=tmp_path / "state", database_url=database_url, csv_dir=sample.csv_paths[0].parent,
                    json_dir=sample.json_dirs[0], image_workers=2, decode_workers=1)


def registry(settings: Settings, backend: str | None = None, weights: Path | None = None) -> ModelRegistry:
    if backend is None:
        return ModelRegistry.from_settings(settings, device="cpu")  # empty cache: no weights
    return ModelRegistry.from_settings(settings, device="cpu", backends={"image_embedder": backend},
                                       weights={"image_embedder": str(weights)})


def run_batch(settings: Settings, instance: dg.DagsterInstance, models: ModelRegistry):
    defs = dg.Definitions(assets=ASSETS, asset_checks=ASSET_CHECKS, jobs=JOBS,
                          resources={**build_resources(settings), "models": models})
    run = materialize_batch(defs.resolve_job_def(INGEST_JOB), instance, BATCH)
    assert run.success and run.promoted and not run.failed_checks, run
    return run


def metadata(instance: dg.DagsterInstance, *path: str) -> dict:
    event = instance.get_latest_materialization_event(dg.AssetKey(list(path)))
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: conn.exec_driver_sql(f"SELECT count(*) FROM {t}").scalar_one() for t in TAG_TABLES}  # noqa: S608


def parquet(settings: Settings, *path: str) -> pd.DataFrame:
    return pd.read_parquet(settings.parquet_root.joinpath(*path) / f"{BATCH}.parquet")


def test_batch_is_embedded_tagged_promoted_and_searchable_per_model_version(settings, dagster_instance, tiny):
    engine = get_engine(settings.database_url)
    discover_batches(settings, dagster_instance, batch_size=6)

    # 1. No weights (the default demo): tagging skips, says why, and writes nothing.
    run_batch(settings, dagster_instance, registry(settings))
    skipped = metadata(dagster_instance, "images", "embeddings")
    assert skipped["skipped"] is True and skipped["pull_command"] == "creatorlens models pull image_embedder"
    assert skipped["embedded"] == 0 and skipped["images"] > 0
    assert metadata(dagster_instance, "warehouse", "promoted_tags")["skipped"] is True
    assert counts(engine) == dict.fromkeys(TAG_TABLES, 0)

    # 2. Tiny SigLIP: every ok image of the batch embedded, tagged, promoted.
    run_batch(settings, dagster_instance, registry(settings, "siglip", tiny["siglip"]))
    emb_meta = metadata(dagster_instance, "images", "embeddings")
    siglip = emb_meta["model_version"]
    assert siglip.startswith("local:tiny-siglip@sha256:") and emb_meta["dim"] == 32 and not emb_meta["skipped"]
    taxonomy = load_taxonomy(settings.taxonomy_path)
    with engine.connect() as conn:
        ok_images = conn.exec_driver_sql(
            "SELECT count(*) FROM images WHERE batch_key = %s AND status = 'ok'", (BATCH,)).scalar_one()
        by_version = dict(conn.exec_driver_sql(
            "SELECT model_version, count(*) FROM image_embeddings GROUP BY 1").all())
        lineage = conn.exec_driver_sql(
            "SELECT DISTINCT model_version, taxonomy_version, threshold_source FROM image_tags").all()
        double_exclusive = conn.exec_driver_sql(
            """SELECT count(*) FROM (SELECT t.image_id, g.category FROM image_tags t JOIN tags g USING (tag_id)
               WHERE g.exclusive AND t.source = 'ai' GROUP BY 1, 2 HAVING count(*) > 1) x""").scalar_one()
        misrouted = conn.exec_driver_sql(
            """SELECT count(*) FROM tag_review_queue WHERE status = 'pending' AND NOT (
                 (reason = 'low_confidence' AND confidence >= review_floor AND confidence < threshold)
              OR (reason = 'exclusive_conflict' AND confidence >= threshold))""").scalar_one()
        wrong_shares = conn.exec_driver_sql(
            """SELECT count(*) FROM creator_tags ct
               JOIN creators c USING (creator_id)
               JOIN (SELECT i.username, t.tag_id, count(*) AS n, avg(t.confidence) AS mean
                     FROM image_tags t JOIN images i USING (image_id) WHERE t.source = 'ai' GROUP BY 1, 2) x
                 ON x.username = c.username AND x.tag_id = ct.tag_id
               JOIN (SELECT i.username, count(*) AS analysed FROM image_embeddings e JOIN images i USING (image_id)
                     GROUP BY 1) a ON a.username = c.username
               WHERE ct.images_tagged <> x.n OR ct.images_analysed <> a.analysed
                  OR abs(ct.share - x.n::real / a.analysed) > 1e-6 OR abs(ct.mean_confidence - x.mean) > 1e-5"""
        ).scalar_one()
        creator_rows = conn.exec_driver_sql("SELECT count(*) FROM creator_tags").scalar_one()
        history = conn.exec_driver_sql("SELECT count(DISTINCT creator_id), count(*) FROM tag_analysis_history").one()
    assert by_version == {siglip: ok_images}
    assert lineage == [(siglip, taxonomy.version, "taxonomy")]
    assert double_exclusive == 0 and misrouted == 0 and wrong_shares == 0 and creator_rows > 0
    assert history[0] == history[1] > 0  # one analysis per creator
    tags_frame = parquet(settings, "images", "tags")
    assert (tags_frame["review_reason"].notna()).sum() == counts(engine)["tag_review_queue"]

    # 3. Rerun with the same model: nothing new anywhere.
    before = counts(engine)
    run_batch(settings, dagster_instance, registry(settings, "siglip", tiny["siglip"]))
    assert counts(engine) == before
    rerun = metadata(dagster_instance, "warehouse", "promoted_tags")
    assert all(v == 0 for k, v in rerun["rows_changed"].items() if k != "tags"), rerun["rows_changed"]

    # 4. Nearest neighbours with the stored vector: each image finds itself first, through its version's index.
    with engine.connect() as conn:
        unique_keys = [k for (k,) in conn.exec_driver_sql(
            """SELECT min(image_key) FROM images WHERE batch_key = %s AND status = 'ok'
               GROUP BY sha256 HAVING count(*) = 1 ORDER BY 1""", (BATCH,)).all()]
    assert len(unique_keys) >= 5
    url = settings.database_url.replace("+psycopg", "")
    with psycopg.connect(url) as conn:
        for key in unique_keys:
            hits = search_images_by_image(conn, image_key=key, model_version=siglip, k=5)
            assert hits[0].image_key == key and hits[0].distance < 1e-6, (key, hits[:2])
            assert [h.distance for h in hits] == sorted(h.distance for h in hits) and len(hits) == 5
        plan = explain_nearest(conn, siglip, 32)
        assert vector_index_name(siglip) in plan, plan

    # 5. A second model version (tiny OpenCLIP) lands beside the first.
    run_batch(settings, dagster_instance, registry(settings, "openclip", tiny["openclip"]))
    openclip = metadata(dagster_instance, "images", "embeddings")["model_version"]
    assert openclip.startswith("local:tiny-openclip@") and openclip != siglip
    with engine.connect() as conn:
        by_version = dict(conn.exec_driver_sql("SELECT model_version, count(*) FROM image_embeddings GROUP BY 1").all())
        tag_versions = dict(conn.exec_driver_sql(
            "SELECT model_version, count(*) FROM image_tags WHERE source = 'ai' GROUP BY 1").all())
        models = dict(conn.exec_driver_sql("SELECT model_version, dim FROM embedding_models").all())
    assert by_version == {siglip: ok_images, openclip: ok_images}
    assert set(tag_versions) == {siglip, openclip} and models == {siglip: 32, openclip: 24}
    assert counts(engine)["tag_review_queue"] >= before["tag_review_queue"]  # SigLIP's queue untouched

    # 6. Queries read one version: distances are those of that version's vectors; mixing is refused.
    emb = parquet(settings, "images", "embeddings")
    assert set(emb["model_version"]) == {openclip}
    vectors = {k: np.asarray(v, dtype=np.float32) for k, v in zip(emb["image_key"], emb["embedding"], strict=True)}
    probe = unique_keys[0]
    defs_models = registry(settings, "openclip", tiny["openclip"]).load("image_embedder")
    siglip_embedder = registry(settings, "siglip", tiny["siglip"]).load("image_embedder")
    with psycopg.connect(url) as conn:
        hits = search_images_by_image(conn, image_key=probe, model_version=openclip, k=ok_images)
        exact = {k: float(1 - vectors[probe] @ v) for k, v in vectors.items()}
        assert {h.image_key for h in hits} == set(exact)
        for h in hits:
            assert h.distance == pytest.approx(exact[h.image_key], abs=2e-3)  # halfvec rounding only
        text_hits = search_images_by_text(conn, defs_models, "a photo of food.", k=3)
        assert len(text_hits) == 3 and all(h.image_key in vectors for h in text_hits)
        with pytest.raises(ValueError, match="cannot search vectors of"):
            search_images_by_text(conn, siglip_embedder, "food", model_version=openclip)
        with pytest.raises(ValueError, match="32 dims, model version .* has 24"):
            nearest_images(conn, np.ones(32, dtype=np.float32), model_version=openclip)
        with pytest.raises(SearchError, match="known versions"):
            nearest_images(conn, np.ones(32, dtype=np.float32), model_version="nope@0")

        # tag filter (iterative scan): only images carrying the tag for THIS version come back
        top_tag, tagged = tagged_images(conn, openclip)
        filtered = search_images_by_image(conn, image_key=probe, model_version=openclip, k=ok_images, tag=top_tag)
        assert {h.image_key for h in filtered} == tagged


def explain_nearest(conn: psycopg.Connection, model_version: str, dim: int) -> str:
    statement = pgsql.SQL(load_queries("search.sql")["nearest_images"]).format(dim=pgsql.Literal(dim))
    with conn.transaction():
        # a 25-row table would otherwise be scanned and sorted; on real sizes the planner picks HNSW by itself
        # (bench/vector_search.py): here we only prove that this query can use that version's partial index.
        for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
            conn.execute(pgsql.SQL("SET LOCAL {} = off").format(pgsql.Identifier(setting)))
        rows = conn.execute(pgsql.SQL("EXPLAIN ") + statement,
                            {"query": "[" + ",".join(["0.1"] * dim) + "]", "model_version": model_version, "k": 5},
                            prepare=False).fetchall()
    return "\n".join(r[0] for r in rows)


def tagged_images(conn: psycopg.Connection, model_version: str) -> tuple[str, set[str]]:
    rows = conn.execute(
        """SELECT g.name, array_agg(i.image_key) FROM image_tags t JOIN tags g USING (tag_id)
           JOIN images i USING (image_id) WHERE t.source = 'ai' AND t.model_version = %s
           GROUP BY g.name ORDER BY count(*) DESC, g.name LIMIT 1""", (model_version,)).fetchone()
    conn.commit()
    return rows[0], set(rows[1])


def test_a_refused_taxonomy_fails_definitions_at_start_up(tmp_path: Path) -> None:
    bad = tmp_path / "taxonomy.yaml"
    bad.write_text("categories:\n  people:\n    tags:\n      caucasian: ['a caucasian person']\n      x: ['x']\n")
    with pytest.raises(TaxonomyError, match="tag 'caucasian'.*ethnicity or race"):
        build_definitions(Settings(state_dir=tmp_path, taxonomy_path=bad))
