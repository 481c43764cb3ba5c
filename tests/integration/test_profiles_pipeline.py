"""The profile stage end to end: real Dagster instance, real embedded PostgreSQL, a real profile
API and a real chat-completions server on 127.0.0.1, the real all-MiniLM-L6-v2 model.
"""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from assets.common.keys import ENRICHED_PROFILES, LLM_PROFILES, PROFILE_EMBEDDINGS, PROMOTED_PROFILES
from assets.profiles.store import (
    ENRICHMENT_COLUMNS,
    PROFILE_COLUMNS,
    promote_profiles,
    similar_creators,
    similar_to_vector,
)
from assets.sources.sample_data import build_sample_data
from creatorlens.queries import load_queries
from creatorlens.settings import Settings
from gpu_ops.text_embed import TextEmbedder
from orchestration.definitions import build_definitions
from orchestration.jobs import INGEST_JOB
from orchestration.runs import discover_batches, materialize_batch
from tests.support.llm_server import serve_llm
from tests.support.profile_server import serve_profiles

pytestmark = pytest.mark.e2e

CSV = ("Rank,Username,Name,Followers,Country,GENRE,details\n"
       "1,run.anna,Anna,12K,DE,Running,\n"          # genre set: kept; bio empty: filled
       "2,bake.ben,Ben,3K,UK,,\n"                   # both empty: both filled
       "3,trail.tom,Tom,800,AT,,Trail running in the Alps every weekend\n"  # bio set: kept
       "4,ghost.gina,Gina,5,US,,\n")                # the API has no such profile (HTML page)
API_PROFILES = {
    "run.anna": dict(category="Athlete", bio="Marathon runner and running coach", business=False),
    "bake.ben": dict(category="Bakery", bio="Vegan baker sharing sourdough bread recipes", business=True),
    "trail.tom": dict(category="Sports", bio="something else entirely", business=False),
    "cake.cara": dict(category="Food", bio="api bio for cara", business=True),
}


def _json_dump(folder: Path, image_dir: Path) -> None:
    edges = [{"node": {"id": f"77{i}", "shortcode": f"cc{i}", "display_url": str(image_dir / name),
                       "taken_at_timestamp": 1714560000 + i * 3600, "edge_liked_by": {"count": 50 - i},
                       "edge_media_to_comment": {"count": 2},
                       "edge_media_to_caption": {"edges": [{"node": {"text": f"Chocolate cake number {i} #baking"}}]}}}
             for i, name in enumerate(["coffee.jpg", "chelsea.jpg"])]
    user = {"username": "cake.cara", "full_name": "Cara", "biography": "Cakes, pastries and layer cakes",
            "category_name": "Food", "edge_followed_by": {"count": 900},
            "edge_owner_to_timeline_media": {"count": 2, "edges": edges}}
    (folder / "web_profile_info(cake.cara)_1.json").write_text(json.dumps({"data": {"user": user}}))


@pytest.fixture
def sources(tmp_path_factory):
    sample = build_sample_data(tmp_path_factory.mktemp("sample"))
    root = tmp_path_factory.mktemp("sources")
    (root / "csv").mkdir()
    (root / "json").mkdir()
    (root / "csv" / "creators.csv").write_text(CSV)
    _json_dump(root / "json", sample.image_dir)
    return root


def _settings(tmp_path: Path, database_url: str, sources: Path, **kw) -> Settings:
    return Settings(state_dir=tmp_path / "state", database_url=database_url, csv_dir=sources / "csv",
                    json_dir=sources / "json", image_workers=2, decode_workers=1, **kw)


def _run(settings: Settings, instance: dg.DagsterInstance):
    discover_batches(settings, instance, batch_size=10)
    run = materialize_batch(build_definitions(settings).resolve_job_def(INGEST_JOB), instance, "batch-00001")
    assert run.success and run.promoted and not run.failed_checks, run
    return run


def _meta(instance: dg.DagsterInstance, key: dg.AssetKey) -> dict:
    event = instance.get_latest_materialization_event(key)
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def _creators(engine: sa.Engine) -> dict[str, dict]:
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT username, category, bio, is_business, enrich_status, enriched_fields, enriched_at, updated_at "
            "FROM creators").mappings().all()
    return {r["username"]: dict(r) for r in rows}


def test_profiles_are_enriched_written_by_the_llm_embedded_and_promoted(
        tmp_path, database_url, dagster_instance, engine, sources):
    with serve_profiles() as api, serve_llm() as llm:
        for name, fields in API_PROFILES.items():
            api.add(name, **fields)
        settings = _settings(tmp_path, database_url, sources, profile_url_template=api.url_template,
                             profile_rate_limit=6000, profile_jitter_min_s=0, profile_jitter_max_s=0,
                             llm_base_url=llm.base_url, llm_model="fake-model")
        _run(settings, dagster_instance)
        first = _creators(engine)
        hits, llm_requests = sum(api.hits.values()), len(llm.requests)

        # Never overwrite: a genre or bio from the source stays; only empty fields are filled.
        assert (first["run.anna"]["category"], first["run.anna"]["bio"]) == ("Running", "Marathon runner and running coach")
        assert (first["bake.ben"]["category"], first["bake.ben"]["bio"]) == (
            "Bakery", "Vegan baker sharing sourdough bread recipes")
        assert (first["trail.tom"]["category"], first["trail.tom"]["bio"]) == (
            "Sports", "Trail running in the Alps every weekend")
        assert (first["cake.cara"]["category"], first["cake.cara"]["bio"]) == ("Food", "Cakes, pastries and layer cakes")
        assert first["ghost.gina"]["enrich_status"] == "not_found" and first["ghost.gina"]["bio"] is None
        assert first["bake.ben"]["enriched_fields"] == ["category", "bio", "is_business", "is_verified"]
        assert first["bake.ben"]["is_business"] is True and first["run.anna"]["enriched_at"] is not None

        enriched = _meta(dagster_instance, ENRICHED_PROFILES)
        assert enriched["net_profiles_gained"] == 3  # anna (bio), ben (both), tom (category)
        assert enriched["coverage_json"]["fill_rate_before"]["bio"] == pytest.approx(2 / 5)
        assert enriched["coverage_json"]["fill_rate_after"]["bio"] == pytest.approx(4 / 5)
        assert enriched["business_share"] == pytest.approx(0.5)
        assert enriched["fetch_outcomes"] == {"ok": 4, "not_found": 1}

        with engine.connect() as conn:
            profiles = {r[0]: r[1:] for r in conn.exec_driver_sql(
                "SELECT username, status, persona, topics, profile->'posting_pattern'->>'best_time', model "
                "FROM creator_profiles").all()}
            embedded = dict(conn.exec_driver_sql("SELECT username, text_source FROM profile_embeddings").all())
        assert set(profiles) == {"run.anna", "bake.ben", "trail.tom", "ghost.gina", "cake.cara"}
        assert profiles["bake.ben"][:2] == ("ok", "@bake.ben is a bakery creator who shares everyday work. Their posts "
                                                  "mix tips with behind-the-scenes moments.")
        assert profiles["bake.ben"][2] == ["bakery", "tutorials"] and profiles["bake.ben"][3:] == ("weekday evenings",
                                                                                                  "fake-model")
        cara_prompt = llm.prompts_for("cake.cara")[0]["messages"][1]["content"]
        assert "Chocolate cake number 1" in cara_prompt and cara_prompt.index("number 1") < cara_prompt.index("number 0")
        assert embedded == {u: "persona+bio" for u in profiles if u != "ghost.gina"} | {"ghost.gina": "persona"}
        assert len(similar_creators(engine, "bake.ben", k=10)) == 4

        # Second run: nothing fetched, asked or embedded again, and no row rewritten.
        _run(settings, dagster_instance)
        assert sum(api.hits.values()) == hits and len(llm.requests) == llm_requests
        assert _creators(engine) == first
        assert _meta(dagster_instance, LLM_PROFILES)["skipped_unchanged"] == 5
        assert _meta(dagster_instance, PROFILE_EMBEDDINGS)["skipped_unchanged"] == 5
        promoted = _meta(dagster_instance, PROMOTED_PROFILES)
        assert promoted["rows_changed"] == {"creators": 0, "creator_profiles": 0, "profile_embeddings": 0}


def test_without_api_or_llm_profiles_pass_through_and_bios_are_embedded(
        tmp_path, database_url, dagster_instance, engine, sources):
    _run(_settings(tmp_path, database_url, sources), dagster_instance)
    assert "passed through unchanged" in _meta(dagster_instance, ENRICHED_PROFILES)["profile_api"]
    llm_meta = _meta(dagster_instance, LLM_PROFILES)
    assert llm_meta["generated"] == 0 and "not configured" in llm_meta["llm_endpoint"]
    assert _meta(dagster_instance, PROFILE_EMBEDDINGS)["embedded_text"] == {"bio": 2}
    creators = _creators(engine)
    assert all(c["enrich_status"] is None and c["enriched_fields"] == [] for c in creators.values())
    assert creators["bake.ben"]["bio"] is None  # nothing to fill it from
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM creator_profiles").scalar_one() == 0
        sources_ = dict(conn.exec_driver_sql("SELECT username, text_source FROM profile_embeddings").all())
    assert sources_ == {"trail.tom": "bio", "cake.cara": "bio"}


def test_similar_creators_ranks_by_meaning(engine):
    bios = {
        "marathon.mia": "Marathon runner. Long runs, race training plans and running shoes.",
        "trail.theo": "Trail running and ultramarathons in the mountains; training for races.",
        "sourdough.sal": "Baking sourdough bread and pastries at home; recipes every week.",
        "cake.clara": "Cakes, cookies and dessert baking recipes for beginners.",
        "chess.chen": "Chess openings, endgame puzzles and tournament analysis.",
    }
    with engine.begin() as conn:
        for name, bio in bios.items():
            conn.exec_driver_sql("INSERT INTO creators (platform, username, bio, batch_key) VALUES "
                                 "('instagram', %s, %s, 'b1')", (name, bio))
    vectors = TextEmbedder(device="cpu").embed(list(bios.values()))
    embeddings = pd.DataFrame({"platform": "instagram", "username": list(bios), "model": TextEmbedder.model_name,
                               "text_source": "bio", "text_hash": [str(i) for i in range(len(bios))],
                               "embedding": list(vectors)})
    fairy = engine.raw_connection()
    try:
        result = promote_profiles(fairy.driver_connection, "b1", embeddings=embeddings,
                                  enriched=pd.DataFrame(columns=list(ENRICHMENT_COLUMNS)),
                                  profiles=pd.DataFrame(columns=list(PROFILE_COLUMNS)))
    finally:
        fairy.close()
    assert result.written["profile_embeddings"] == 5

    # Each creator's nearest neighbour is the one on the same topic, by a wide margin.
    for a, b in (("marathon.mia", "trail.theo"), ("trail.theo", "marathon.mia"),
                 ("sourdough.sal", "cake.clara"), ("cake.clara", "sourdough.sal")):
        ranked = similar_creators(engine, a, k=4)
        assert ranked[0][0] == b and a not in {u for u, _ in ranked}
        assert ranked[0][1] > 0.4 > 0.3 > max(sim for _, sim in ranked[1:])
        assert [sim for _, sim in ranked] == sorted((sim for _, sim in ranked), reverse=True)
    query = TextEmbedder(device="cpu").embed(["brand looking for a baking creator to promote flour"])[0]
    assert {u for u, _ in similar_to_vector(engine, query, k=2)} == {"sourdough.sal", "cake.clara"}
    with engine.connect() as conn:  # the nearest-neighbour query can walk the HNSW index (5 rows: force it)
        conn.exec_driver_sql("SET enable_seqscan = off")
        conn.exec_driver_sql("SET enable_sort = off")
        plan = "\n".join(r[0] for r in conn.exec_driver_sql(
            "EXPLAIN " + load_queries("profiles.sql")["similar_creators"],
            {"platform": "instagram", "username": "marathon.mia", "k": 3}).all())
    assert "profile_embeddings_hnsw_idx" in plan
