"""Raw data from MongoDB and from paged APIs.

No MongoDB server can be installed on these machines, so the MongoDB adapter runs on
``mongomock``: its ``MongoClient`` stands in for pymongo's (injected, or patched in with
``mongomock.patch`` where production code calls ``pymongo.MongoClient(url)`` itself). The code
under test is the production pymongo code path. The paged fetcher talks to a real HTTP server on
127.0.0.1 (tests/support/http.py).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import mongomock
import pymongo
import pytest

from assets.sources.parsing import read_json_dumps, read_stored_responses
from assets.sources.sample_data import build_sample_data
from creatorlens.settings import Settings
from orchestration.runs import discover_batches
from resources.mongo import RawResponseStore
from resources.paged import ERROR_DIR, PagedEndpoint, PagedFetcher, load_into_json_folder, load_into_mongo
from tests.support.http import Route, serve_cdn


def comparable(records, media_root: Path | None = None):
    """Records as dicts with provenance reduced to the file name (a path vs a MongoDB label).

    ``media_root``: resolve relative media paths against it, as the JSON folder source does with
    its own folder (a MongoDB document has no folder, so such paths stay relative there).
    """
    out = []
    for record in records:
        row = dataclasses.asdict(record)
        if media_root is not None and row.get("media_url") and not row["media_url"].startswith(("/", "http")):
            row["media_url"] = str((media_root / row["media_url"]).resolve())
        if "sources" in row:
            row["sources"] = tuple(Path(s).name for s in row["sources"])
        for key in ("source",):
            if row.get(key):
                row[key] = Path(row[key]).name
        out.append(row)
    return sorted(out, key=lambda r: json.dumps(r, sort_keys=True, default=str))


def rejects_of(rejects):
    return sorted((Path(r.source).name, r.record, r.reason) for r in rejects)


def store_folder(folder: Path, store: RawResponseStore) -> int:
    """Every file of a JSON dump folder as a raw response document (file name + raw body text)."""
    files = sorted(p for p in folder.iterdir() if p.suffix == ".json")
    for path in files:
        store.put(path.name, path.read_bytes(), status=200)
    return len(files)


def test_mongo_and_json_folder_give_identical_snapshots(tmp_path):
    sample = build_sample_data(tmp_path / "sample")
    folder = sample.json_dirs[0]
    (folder / "web_profile_info(late.joiner)_9.json").write_text("{not json")  # a reject on both paths
    store = RawResponseStore(mongomock.MongoClient(), "creatorlens", "raw_api_responses")
    assert store_folder(folder, store) >= 5

    from_folder = read_json_dumps(folder)
    from_mongo = read_stored_responses(store.documents(), store.label)
    assert len(from_folder[0]) >= 3 and len(from_folder[1]) >= 10
    assert comparable(from_mongo[0]) == comparable(from_folder[0])  # creators
    # posts, de-duplicated by id; the sample's relative image paths are the one thing only a folder resolves
    assert comparable(from_mongo[1], media_root=folder) == comparable(from_folder[1])
    assert any(not p.media_url.startswith("/") for p in from_mongo[1])
    assert rejects_of(from_mongo[2]) == rejects_of(from_folder[2])
    assert any("invalid JSON" in r.reason for r in from_mongo[2])
    assert all(r.source.startswith("mongodb:creatorlens.raw_api_responses/") for r in from_mongo[2])


def item(post_id: str, likes: int) -> dict:
    return {"id": post_id, "taken_at": 1714560000 + int(post_id), "like_count": likes, "comment_count": 1,
            "caption": {"text": f"post {post_id}"}, "image_versions2": {"candidates": [{"url": f"https://cdn/{post_id}.jpg"}]}}


def page(items: list[dict], next_max_id: str | None, more: bool) -> Route:
    body = {"data": {"items": items, "next_max_id": next_max_id, "more_available": more}}
    return Route(200, json.dumps(body).encode(), "application/json")


@pytest.fixture
def paged_api():
    with serve_cdn() as api:
        r = api.routes
        # ana: 3 pages; page 2 first answers 429, then 500, then the page (a post repeated across pages)
        r["/posts?username=ana"] = page([item("1", 10), item("2", 20)], "c1", True)
        r["/posts?username=ana&max_id=c1"] = [
            Route(429, b'{"detail": "slow down"}', "application/json", headers={"Retry-After": "0"}),
            Route(500, b"upstream error", "text/plain"),
            page([item("2", 21), item("3", 30)], "c2", True),
        ]
        r["/posts?username=ana&max_id=c2"] = page([item("4", 40)], None, False)
        # bo: the API hands back the cursor it was just given: stop instead of looping
        r["/posts?username=bo"] = page([item("11", 1)], "x1", True)
        r["/posts?username=bo&max_id=x1"] = page([item("12", 2)], "x1", True)
        # cy: a persistent server error: kept with its status, nothing else
        r["/posts?username=cy"] = Route(503, b'{"error": "maintenance"}', "application/json")
        yield api


def test_paged_fetcher_follows_cursors_retries_and_keeps_error_bodies(paged_api, tmp_path):
    raw = tmp_path / "raw"
    endpoint = PagedEndpoint(name="user_posts", url=paged_api.url("/posts") + "?username={username}")
    with PagedFetcher(raw, retries=2, backoff_s=0.01) as fetcher:
        runs = {u: fetcher.fetch(endpoint, u) for u in ("ana", "bo", "cy")}
    assert {u: (r.stop_reason, len(r.pages)) for u, r in runs.items()} == {
        "ana": ("end", 3), "bo": ("repeated_cursor", 2), "cy": ("http_503", 1)}
    assert runs["ana"].requests == 5 and runs["cy"].requests == 3  # 2 retries each where needed
    assert [p.cursor for p in runs["ana"].pages] == [None, "c1", "c2"]
    error = raw / ERROR_DIR / "user_posts(cy)_0001.json"
    assert json.loads(error.read_text()) == {"error": "maintenance"} and runs["cy"].pages[0].status == 503
    assert sorted(p.name for p in raw.glob("*.json")) == [
        "user_posts(ana)_0001.json", "user_posts(ana)_0002.json", "user_posts(ana)_0003.json",
        "user_posts(bo)_0001.json", "user_posts(bo)_0002.json"]

    # Then into the JSON folder and into MongoDB: the same snapshot either way.
    json_dir = tmp_path / "json"
    assert load_into_json_folder(raw, json_dir) == 5
    store = RawResponseStore(mongomock.MongoClient())
    assert load_into_mongo(raw, store) == 6 and load_into_mongo(raw, store) == 6  # idempotent upserts
    assert store.collection.count_documents({}) == 6
    assert store.collection.find_one({"filename": "user_posts(cy)_0001.json"})["status"] == 503
    creators, posts, rejects = read_stored_responses(store.documents(), store.label)
    folder = read_json_dumps(json_dir)
    assert comparable(creators) == comparable(folder[0]) and comparable(posts) == comparable(folder[1])
    assert sorted(p.post_id for p in posts if p.username == "ana") == ["1", "2", "3", "4"]
    assert [r.reason for r in rejects] == ["stored error response (HTTP 503)"]


def test_discovery_sees_mongo_creators_when_mongodb_url_is_set(tmp_path, database_url, dagster_instance):
    sample = build_sample_data(tmp_path / "sample")
    url = "mongodb://mongo.test:27017/"
    with mongomock.patch(servers=(("mongo.test", 27017),)):
        client = pymongo.MongoClient(url)  # what production code calls; mongomock's client here
        store = RawResponseStore(client, "creatorlens", "raw_api_responses")
        doc = {"data": {"user": {"username": "mongo.only", "full_name": "Only In Mongo", "biography": "from mongo",
                                 "edge_followed_by": {"count": 7}, "edge_owner_to_timeline_media": {"edges": []}}}}
        store.put("web_profile_info(mongo.only)_1.json", json.dumps(doc))
        base = Settings(state_dir=tmp_path / "state", database_url=database_url,
                        csv_dir=sample.csv_paths[0].parent, json_dir=sample.json_dirs[0])
        without = discover_batches(base, dagster_instance, batch_size=100)
        with_mongo = discover_batches(base.model_copy(update={"mongodb_url": url}), dagster_instance, batch_size=100)
    assert "mongo.only" not in without.snapshot.creators
    assert with_mongo.snapshot.creators["mongo.only"].bio == "from mongo"
    assert with_mongo.assignment.new_creators == 1  # the Mongo creator got a batch of its own
    assert with_mongo.snapshot.creators["mongo.only"].sources == ("mongodb:creatorlens.raw_api_responses/"
                                                                  "web_profile_info(mongo.only)_1.json",)
