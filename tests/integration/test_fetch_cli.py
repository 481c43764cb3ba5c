"""``creatorlens fetch`` against a TikHub-like API on 127.0.0.1, then ``batch`` + ``run`` from its files.

The API (tests/support/fetch_api_server.py) is a real HTTP server: pages with cursors (TikHub's
``pagination_token`` for posts, the private API's ``next_max_id`` for reels), one user whose API
hands back the cursor it was given, a 429 with ``Retry-After`` before a page, a JSON error body
and an HTML page where JSON was due; its CDN serves real JPEGs (the sample photos) until the
signed URLs "expire" (403 URL signature expired). The command runs through click's CliRunner; the
batch runs through ``materialize_batch`` on a real Dagster instance into the real warehouse.

MongoDB cannot run on these machines: the ``--mongo`` upload runs the production pymongo code
path on ``mongomock`` (``mongomock.patch`` stands in for the server ``pymongo.MongoClient`` dials).
"""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import httpx
import mongomock
import pytest
from click.testing import CliRunner

from assets.images.assets import _fetch
from assets.images.imaging import ImageLimits
from assets.images.local_copies import MEDIA_DIR, find_local_copy
from assets.sources.parsing import load_sources, read_stored_responses
from assets.sources.sample_data import build_sample_data
from orchestration.cli import cli
from orchestration.definitions import build_definitions
from orchestration.jobs import INGEST_JOB
from orchestration.runs import discover_batches, materialize_batch
from resources.mongo import RawResponseStore
from resources.paged import ERROR_DIR, read_manifest, read_runs
from tests.integration.test_resume import GOOD, _settings
from tests.support.fetch_api_server import (
    POSTS_PATH,
    REELS_PATH,
    Answer,
    feed_item,
    owner,
    posts_page,
    reels_page,
    serve_fetch_api,
)

pytestmark = pytest.mark.e2e

ANA, BO = owner("ana.lens", 501, followers=4321), owner("bo.repeat", 502)
MONGO_URL = "mongodb://mongo.test:27017/"


@pytest.fixture
def api(tmp_path_factory):
    sample = build_sample_data(tmp_path_factory.mktemp("sample"))
    with serve_fetch_api() as api:
        for name in GOOD[:9]:
            api.images[name] = (sample.image_dir / name).read_bytes()
        url = api.image_url
        # ana.lens: posts over 3 pages (a 3-image carousel on page 1; page 2 first answers 429), one reel
        api.add(POSTS_PATH, "ana.lens", "", posts_page(
            [feed_item(1001, ANA, [url(GOOD[0]), url(GOOD[1]), url(GOOD[2])], likes=90),
             feed_item(1002, ANA, [url(GOOD[3])], likes=80)], ANA, "tok2"))
        api.add(POSTS_PATH, "ana.lens", "tok2",
                Answer(429, b'{"code": 429, "message": "Too many requests"}', headers={"Retry-After": "1"}),
                posts_page([feed_item(1003, ANA, [url(GOOD[4])], likes=70)], ANA, "tok3"))
        api.add(POSTS_PATH, "ana.lens", "tok3", posts_page([feed_item(1004, ANA, [url(GOOD[5])], likes=60)], ANA, None))
        api.add(REELS_PATH, "ana.lens", "", reels_page([feed_item(1005, ANA, [url(GOOD[6])], likes=50, reel=True)],
                                                        None))
        # bo.repeat: the API answers cursor x1 with cursor x1 again; the reels feed is empty
        api.add(POSTS_PATH, "bo.repeat", "", posts_page([feed_item(2001, BO, [url(GOOD[7])])], BO, "x1"))
        api.add(POSTS_PATH, "bo.repeat", "x1", posts_page([feed_item(2002, BO, [url(GOOD[8])])], BO, "x1"))
        api.add(REELS_PATH, "bo.repeat", "", reels_page([], None))
        # cy.error: a JSON error body; dee.html: an HTML login wall served as 200
        api.add(POSTS_PATH, "cy.error", "", Answer(404, b'{"code": 404, "message": "User not found"}'))
        api.add(POSTS_PATH, "dee.html", "", Answer(
            200, b"<!DOCTYPE html><html><head><title>Login \xe2\x80\xa2 Instagram</title></head></html>", "text/html"))
        yield api


def _fetch_cli(api, state: Path, json_dir: Path, *extra: str, env: dict[str, str] | None = None):
    env = {"CREATORLENS_JSON_DIR": str(json_dir), "CREATORLENS_FETCH_API_URL": api.base_url,
           "CREATORLENS_FETCH_API_TOKEN": api.token, "CREATORLENS_FETCH_BACKOFF_S": "0.01",
           "CREATORLENS_FETCH_RETRIES": "2", **(env or {})}
    args = ["--state-dir", str(state), "fetch", "ana.lens", "bo.repeat", "cy.error", "dee.html",
            "--post-pages", "5", "--reel-pages", "2", *extra]
    return CliRunner().invoke(cli, args, env=env, catch_exceptions=False)


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
            and p.suffix != ".jsonl"}


def test_fetch_writes_pages_and_images_first_and_the_run_uses_the_local_copies(
    api, tmp_path, tmp_path_factory, database_url, dagster_instance, engine
):
    json_dir = tmp_path_factory.mktemp("json")
    result = _fetch_cli(api, tmp_path / "state", json_dir)
    out = result.output
    assert result.exit_code == 0, out

    # --- raw pages as received, error bodies apart, each stop recorded
    pages = sorted(p.name for p in json_dir.glob("*.json"))
    assert pages == ["user_posts(ana.lens)_0001.json", "user_posts(ana.lens)_0002.json",
                     "user_posts(ana.lens)_0003.json", "user_posts(bo.repeat)_0001.json",
                     "user_posts(bo.repeat)_0002.json", "user_reels(ana.lens)_0001.json",
                     "user_reels(bo.repeat)_0001.json"]
    assert json.loads((json_dir / ERROR_DIR / "user_posts(cy.error)_0001.json").read_bytes()) == {
        "code": 404, "message": "User not found"}
    assert b"<title>Login" in (json_dir / ERROR_DIR / "user_posts(dee.html)_0001.json").read_bytes()
    stops = {(r["username"], r["endpoint"]): (r["stop_reason"], r["ok_pages"], r["error"]) for r in read_runs(json_dir)}
    assert stops == {
        ("ana.lens", "user_posts"): ("end", 3, None), ("ana.lens", "user_reels"): ("end", 1, None),
        ("bo.repeat", "user_posts"): ("repeated_cursor", 2, None), ("bo.repeat", "user_reels"): ("end", 1, None),
        ("cy.error", "user_posts"): ("http_404", 0, "HTTP 404: code 404: User not found"),
        ("dee.html", "user_posts"): ("invalid_json", 0, "not JSON: HTTP 200: HTML page 'Login • Instagram'"),
    }
    assert not any("cy.error" in path or "dee.html" in path for _, path, _ in api.hits(REELS_PATH))  # next user
    assert "User not found" in out and "repeated_cursor" in out and "fetched 2 of 4 users" in out
    # the 429 was retried after the Retry-After it asked for
    tok2 = [(t, status) for t, path, status in api.hits(POSTS_PATH) if "pagination_token=tok2" in path]
    assert [s for _, s in tok2] == [429, 200] and tok2[1][0] - tok2[0][0] >= 0.9

    # --- the sources read the pages as they are
    snapshot = load_sources(json_dirs=[json_dir])
    assert sorted(snapshot.creators) == ["ana.lens", "bo.repeat"] and not snapshot.rejects
    assert snapshot.creators["ana.lens"].followers == 4321
    posts = {p.post_id: p for p in snapshot.posts}
    assert sorted(posts) == ["1001", "1002", "1003", "1004", "1005", "2001", "2002"]
    assert [i.position for i in posts["1001"].images] == [1, 2, 3] and posts["1005"].is_video

    # --- every image saved next to the pages, byte for byte what the CDN served
    media = sorted(p.relative_to(json_dir).as_posix() for p in (json_dir / MEDIA_DIR).rglob("*") if p.is_file())
    assert media == [f"media/instagram/{name}.jpg" for name in (
        "1001_1", "1001_2", "1001_3", "1002_1", "1003_1", "1004_1", "1005_1", "2001_1", "2002_1")]
    assert find_local_copy(json_dir, "instagram", "1001", 2).read_bytes() == api.images[GOOD[1]]
    assert "images: 9 saved, 0 already saved, 0 failed" in out

    # --- the image stage: a local copy first; an unreadable one falls back to the URL
    limits, row = ImageLimits(), {"platform": "instagram", "post_id": "1002", "position": 1,
                                  "source": str(json_dir / "user_posts(ana.lens)_0001.json"),
                                  "media_url": api.image_url(GOOD[3])}
    copy = find_local_copy(json_dir, "instagram", "1002", 1)
    with httpx.Client() as client:
        cdn_before = len(api.hits("/cdn/"))
        assert _fetch(dict(row), limits=limits, client=client) == api.images[GOOD[3]]
        assert len(api.hits("/cdn/")) == cdn_before  # not asked
        copy.write_bytes(b"")  # unreadable as an image source: empty
        fallback = dict(row)
        assert _fetch(fallback, limits=limits, client=client) == api.images[GOOD[3]]
        assert "image_origin" not in fallback and len(api.hits("/cdn/")) == cdn_before + 1
    copy.write_bytes(api.images[GOOD[3]])

    # --- the URLs expire; batch + run: every image from its local copy, all ok
    api.expired = True
    settings = _settings(tmp_path, database_url, json_dir)
    discover_batches(settings, dagster_instance)
    job = build_definitions(settings).resolve_job_def(INGEST_JOB)
    cdn_before = len(api.hits("/cdn/"))
    run = materialize_batch(job, dagster_instance, "batch-00001")
    assert run.success and run.promoted, run
    # no photo was asked of the (expired) CDN; the reel's video file (keyframes) is not a fetched image
    assert [path for _, path, _ in api.hits("/cdn/")[cdn_before:] if "video=1" not in path] == []

    def warehouse() -> tuple:
        with engine.connect() as conn:
            # photos only: a reel's keyframes (from its video file, not a fetched image) are another stage's
            images = conn.exec_driver_sql(
                "SELECT image_key, status, source_uri FROM images WHERE image_key !~ ':(video|t[0-9]+)$' "
                "ORDER BY image_key").all()
            n_posts = conn.exec_driver_sql("SELECT count(*) FROM posts").scalar_one()
            n_creators = conn.exec_driver_sql("SELECT count(*) FROM creators").scalar_one()
        return images, n_posts, n_creators

    images, n_posts, n_creators = warehouse()
    assert (n_posts, n_creators) == (7, 2)
    assert {status for _, status, _ in images} == {"ok"} and len(images) == 9
    assert {key for key, _, _ in images} >= {"instagram:1001", "instagram:1001:2", "instagram:1001:3"}
    assert all("oe=" in uri for *_, uri in images)  # the row keeps the URL the post named
    materialization = dagster_instance.get_latest_materialization_event(dg.AssetKey(["images", "creator_images"]))
    assert materialization.asset_materialization.metadata["from_local_copies"].value == 9

    # --- a re-fetch (now with --mongo) writes no new files and no new rows
    before = _tree(json_dir)
    with mongomock.patch(servers=(("mongo.test", 27017),)):
        again = _fetch_cli(api, tmp_path / "state", json_dir, "--mongo", env={"MONGODB_URL": MONGO_URL})
        assert again.exit_code == 0, again.output
        assert "images: 0 saved, 9 already saved, 0 failed" in again.output
        assert "MongoDB: 9 pages upserted" in again.output
        import pymongo

        store = RawResponseStore(pymongo.MongoClient(MONGO_URL))
        assert store.collection.count_documents({}) == 9
        assert store.collection.find_one({"filename": "user_posts(cy.error)_0001.json"})["status"] == 404
        creators, mongo_posts, rejects = read_stored_responses(store.documents(), store.label)
    assert _tree(json_dir) == before  # same files, same bytes
    assert len(read_manifest(json_dir)) == 9  # one line per page file, the latest
    assert sorted(c.username for c in creators) == ["ana.lens", "bo.repeat"]
    assert sorted(p.post_id for p in mongo_posts) == sorted(posts)
    # error bodies are stored with their status: rejects when read back, never creators or posts
    assert sorted(r.reason.split(":")[0] for r in rejects) == ["invalid JSON", "stored error response (HTTP 404)"]
    # the same sources: nothing new to batch (re-running a batch over the same rows is idempotent, test_resume)
    assert discover_batches(settings, dagster_instance).assignment.new_creators == 0
    resnap = load_sources(json_dirs=[json_dir])
    assert sorted(resnap.creators) == sorted(snapshot.creators) and len(resnap.posts) == len(snapshot.posts)
    assert warehouse() == (images, n_posts, n_creators)


def test_fetch_exits_non_zero_only_when_nothing_could_be_fetched(api, tmp_path):
    json_dir = tmp_path / "json"
    result = CliRunner().invoke(cli, ["--state-dir", str(tmp_path / "state"), "fetch", "cy.error", "dee.html"],
                                env={"CREATORLENS_JSON_DIR": str(json_dir), "CREATORLENS_FETCH_API_URL": api.base_url,
                                     "CREATORLENS_FETCH_API_TOKEN": api.token})
    assert result.exit_code == 1, result.output
    assert "fetched 0 of 2 users" in result.output and "User not found" in result.output
    assert not list(json_dir.glob("*.json")) and len(list((json_dir / ERROR_DIR).glob("*.json"))) == 2

    wrong_token = CliRunner().invoke(cli, ["--state-dir", str(tmp_path / "state"), "fetch", "ana.lens"],
                                     env={"CREATORLENS_JSON_DIR": str(json_dir),
                                          "CREATORLENS_FETCH_API_URL": api.base_url,
                                          "CREATORLENS_FETCH_API_TOKEN": "nope"})
    assert wrong_token.exit_code == 1 and "code 401: Invalid or missing token" in wrong_token.output
