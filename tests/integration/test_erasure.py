"""Erasure end to end: a real sample batch (sources → images → vision → tags → promotion) on a real
Dagster instance and PostgreSQL, then ``creatorlens forget pixel.thief``; nothing of the creator is
left in any table or state file, and re-running the sources does not bring them back.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from assets.common.keys import RAW_POSTS, RAW_PROFILES
from assets.sources.sample_data import build_sample_data
from creatorlens.settings import Settings
from orchestration.cli import cli
from orchestration.definitions import ASSET_CHECKS, ASSETS, JOBS, build_resources
from orchestration.jobs import INGEST_JOB
from orchestration.runs import discover_batches, materialize_batch
from resources.erasure import username_hash
from resources.models import ModelRegistry
from resources.profile_api import FetchStatus, ProfileCache, ProfileResult
from tests.support.tiny_models import build_tiny_siglip

pytestmark = pytest.mark.e2e

GONE = "pixel.thief"
KEPT = "lab.slides"  # same batch: must survive untouched


def _rows(engine: sa.Engine, sql: str, **params) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql(sql, params).all()]


def _tables(engine: sa.Engine) -> list[str]:
    return [r[0] for r in _rows(engine, "SELECT table_name FROM information_schema.tables "
                                        "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'")]


def _mentions(engine: sa.Engine, needle: str) -> dict[str, int]:
    """Rows of every table whose text form (every column) names ``needle`` as a word."""
    pattern = r"(^|[^a-z0-9_.])" + re.escape(needle).replace("\\.", r"\.") + r"($|[^a-z0-9_])"
    found = {}
    for table in _tables(engine):
        n = _rows(engine, f'SELECT count(*) FROM "{table}" t WHERE t::text ~* %(p)s', p=pattern)[0][0]  # noqa: S608
        if n:
            found[table] = n
    return found


def _id_refs(engine: sa.Engine, column: str, ids: list[int]) -> dict[str, int]:
    found = {}
    tables = _rows(engine, "SELECT table_name FROM information_schema.columns "
                           "WHERE table_schema = current_schema() AND column_name = %(c)s", c=column)
    for (table,) in tables:
        n = _rows(engine, f'SELECT count(*) FROM "{table}" WHERE {column} = ANY(%(ids)s)', ids=ids)[0][0]  # noqa: S608
        if n:
            found[table] = n
    return found


def _state_mentions(state: Path, needle: str, image_keys: set[str]) -> list[str]:
    hits = []
    for path in state.rglob("*"):
        if not path.is_file():
            continue
        if path.suffix == ".parquet":
            text = pd.read_parquet(path).astype(str).to_csv().lower()
            if needle in text or any(k in text for k in image_keys):
                hits.append(str(path))
        elif needle.encode() in path.read_bytes().lower():
            hits.append(str(path))
    return hits


def test_forget_removes_the_creator_everywhere_and_sources_do_not_bring_them_back(
    tmp_path: Path, database_url: str, engine: sa.Engine, dagster_instance: dg.DagsterInstance
) -> None:
    sample = build_sample_data(tmp_path / "sample")  # the source drop folders live outside the state dir
    state = tmp_path / "state"
    settings = Settings(state_dir=state, database_url=database_url, csv_dir=sample.csv_paths[0].parent,
                        json_dir=sample.json_dirs[0], image_workers=2, decode_workers=1, device="cpu")
    discover_batches(settings, dagster_instance, batch_size=6)
    ((batch,),) = _rows(engine, "SELECT batch_key FROM creator_batches WHERE username = %(u)s", u=GONE)
    models = ModelRegistry.from_settings(settings, device="cpu", backends={"image_embedder": "siglip"},
                                         weights={"image_embedder": str(build_tiny_siglip(tmp_path / "siglip"))})
    defs = dg.Definitions(assets=ASSETS, asset_checks=ASSET_CHECKS, jobs=JOBS,
                          resources={**build_resources(settings), "models": models})
    job = defs.resolve_job_def(INGEST_JOB)
    run = materialize_batch(job, dagster_instance, batch)
    assert run.success and run.promoted, run
    # Cached API data in the state folder: the profile cache holds both creators.
    cache = ProfileCache(settings.resolved_profile_cache)
    for user in (GONE, KEPT):
        cache.put(ProfileResult(user, FetchStatus.OK, profile={"username": user, "bio": f"hi from {user}"}))
    cache.close()

    (creator_id,) = _rows(engine, "SELECT creator_id FROM creators WHERE username = %(u)s", u=GONE)[0]
    images = _rows(engine, "SELECT image_id, image_key, blob_key, thumb_key FROM images WHERE username = %(u)s", u=GONE)
    image_ids, image_keys = [i[0] for i in images], {i[1] for i in images}
    blob_keys = {k for i in images for k in i[2:] if k}
    blob_keys |= {r[0] for r in _rows(engine, "SELECT crop_key FROM persons WHERE image_key = ANY(%(k)s)",
                                      k=list(image_keys))}
    before = _mentions(engine, GONE)
    assert {"creators", "posts", "images", "creator_batches"} <= set(before), before
    refs_before = _id_refs(engine, "image_id", image_ids)
    assert {"image_embeddings", "image_tags"} <= set(refs_before), refs_before  # tags reached them
    assert all((settings.blob_root / k).exists() for k in blob_keys) and len(blob_keys) >= len(images)
    kept_rows = _mentions(engine, KEPT)
    with engine.begin() as conn:  # a record about a source row of theirs, in a table with no creator key
        conn.exec_driver_sql("INSERT INTO source_rejects (source, record, reason) VALUES "
                             "('late.csv', 'line 9', 'duplicate row for @pixel.thief')")

    env = {"CREATORLENS_STATE_DIR": str(state), "DATABASE_URL": database_url}
    # The creator's own app account (creator role), made from the command line: it goes with them.
    account = CliRunner().invoke(cli, ["app", "user", "add", "pixel", "--creator", "@Pixel.Thief"],
                                 env={**env, "CREATORLENS_APP_PASSWORD": "a long pass phrase"})
    assert account.exit_code == 0 and "(creator)" in account.output, account.output
    assert _rows(engine, "SELECT role FROM app_users WHERE username = 'pixel'") == [("creator",)]
    result = CliRunner().invoke(cli, ["forget", "@Pixel.Thief", "--yes", "--json"], env=env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["rows"]["creators"] == 1 and report["rows"]["images"] == len(images)
    assert report["rows"]["posts"] >= len(images) and report["rows"]["creator_batches"] == 1
    assert report["rows"]["image_tags"] == refs_before["image_tags"]
    assert report["rows"]["source_rejects"] == 1 and report["rows"]["app_users"] == 1
    assert report["blobs"] + report["blobs_kept"] == len(blob_keys)
    assert report["files"] == {"profile_cache.sqlite": 1, **{k: v for k, v in report["files"].items()
                                                              if k.endswith(".parquet")}}
    assert any(k.endswith(".parquet") for k in report["files"])
    assert report["residual_mentions"] == {} and report["residual_files"] == []

    # Nothing of the creator in the warehouse: not the name in any column, not their ids or keys.
    assert _mentions(engine, GONE) == {}
    assert _id_refs(engine, "image_id", image_ids) == {}
    assert _id_refs(engine, "creator_id", [creator_id]) == {}
    for key in image_keys:
        assert _mentions(engine, key) == {}, key
    # ... nor in the state folder (blobs, Parquet stage outputs, the profile cache).
    assert report["blobs_kept"] == 0 and not any((settings.blob_root / k).exists() for k in blob_keys)
    assert _state_mentions(state, GONE, image_keys) == []
    # The other creator of the batch is untouched.
    assert _mentions(engine, KEPT) == kept_rows
    assert ProfileCache(settings.resolved_profile_cache).get(KEPT) is not None
    # The tombstone holds a hash, never the name.
    tomb = _rows(engine, "SELECT platform, username_sha256 FROM creator_tombstones")
    assert tomb == [("instagram", username_hash(GONE))]

    # The sources still hold the creator: batch discovery (the sensor's path too) drops them, with a reason.
    again = discover_batches(settings, dagster_instance, batch_size=6)
    assert again.assignment.erased == 1 and again.assignment.new_creators == 0
    assert GONE in {c for c in again.snapshot.creators}
    assert _rows(engine, "SELECT reason FROM source_rejects WHERE source = 'tombstone'") == [("erased",)]
    rerun = materialize_batch(job, dagster_instance, batch, assets=[RAW_PROFILES, RAW_POSTS])
    assert rerun.success, rerun
    profiles = pd.read_parquet(settings.parquet_root / "raw" / "profiles" / f"{batch}.parquet")
    assert KEPT in set(profiles["username"]) and GONE not in set(profiles["username"])
    assert _mentions(engine, GONE) == {}
    # Forgetting again is harmless: nothing left to remove, the tombstone stays one row.
    second = CliRunner().invoke(cli, ["forget", GONE, "--yes"], env=env)
    assert second.exit_code == 0 and "0 rows" in second.output, second.output
    assert len(_rows(engine, "SELECT 1 FROM creator_tombstones")) == 1


def test_state_folder_scrub_covers_dumps_csv_caches_and_says_what_it_leaves(tmp_path: Path) -> None:
    """The state-folder half alone, on files of each kind the state folder holds."""
    import sqlite3

    from resources.erasure import ErasureReport, scrub_state

    state = tmp_path / "state"
    (state / "parquet" / "raw" / "posts").mkdir(parents=True)
    pd.DataFrame({"platform": ["instagram"] * 3, "username": [GONE, KEPT, GONE], "post_id": ["1", "2", "3"]}
                 ).to_parquet(state / "parquet" / "raw" / "posts" / "batch-00001.parquet", index=False)
    (state / "sample" / "json").mkdir(parents=True)
    (state / "sample" / "json" / f"web_profile_info({GONE})_2024-05-01.json").write_text('{"data": {}}')
    (state / "sample" / "json" / "feed_page1.json").write_text(json.dumps({"items": [{"user": {"username": GONE}}]}))
    (state / "sample" / "json" / f"web_profile_info({KEPT}).json").write_text(json.dumps({"username": KEPT}))
    (state / "sample" / "csv").mkdir(parents=True)
    (state / "sample" / "csv" / "export.csv").write_text(f"username;followers\n@{GONE};10\n{KEPT};20\n")
    db = sqlite3.connect(state / "llm_cache.db")
    db.execute("CREATE TABLE answers (username TEXT, answer TEXT)")
    db.executemany("INSERT INTO answers VALUES (?, ?)", [(GONE, "x"), (KEPT, "y")])
    db.commit()
    db.close()
    (state / "notes.txt").write_text(f"call {GONE} back")  # nothing knows this format: reported, not guessed at
    (state / "models").mkdir()
    (state / "models" / "weights.bin").write_bytes(GONE.encode())  # no creator data there: not scanned
    (state / "dagster_home").mkdir()
    report = ErasureReport("instagram", username_hash(GONE))
    scrub_state(state, state / "blobs", state / "parquet", GONE, "instagram",
                {"image_keys": set(), "image_ids": set(), "creator_ids": set(), "post_ids": {"1", "3"}}, [], report)
    assert report.files == {"parquet/raw/posts/batch-00001.parquet": 2, "llm_cache.db": 1, "sample/csv/export.csv": 1,
                            f"sample/json/web_profile_info({GONE})_2024-05-01.json": -1,
                            "sample/json/feed_page1.json": -1}
    assert list(pd.read_parquet(state / "parquet" / "raw" / "posts" / "batch-00001.parquet")["username"]) == [KEPT]
    assert (state / "sample" / "csv" / "export.csv").read_text().splitlines() == ["username;followers", f"{KEPT};20"]
    assert (state / "sample" / "json" / f"web_profile_info({KEPT}).json").exists()
    assert report.residual_files == ["notes.txt"]
    assert any(n.startswith("dagster_home") for n in report.not_scrubbed)
