"""Tag counts are cached (counting every image's effective tags was the costliest read under load,
issue 14's benchmark): this app's own writes show at once, writes from elsewhere (a promotion by the
pipeline) within the cache's TTL, never later."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient
from sqlalchemy import text

from app.queries import TagCounts
from tests.app.conftest import bearer


def test_tag_counts_follow_the_apps_writes_at_once_and_other_writes_within_the_ttl(web_app, tokens,
                                                                                   app_engine) -> None:
    web_app.state.tag_counts = TagCounts(ttl_s=1.0)
    viewer = TestClient(web_app, headers=bearer(tokens["viewer"]))
    reviewer = TestClient(web_app, headers=bearer(tokens["reviewer"]))

    def count(name: str) -> int:
        return {t["name"]: t["images"] for t in viewer.get("/api/tags", params={"limit": 200}).json()}[name]

    first = viewer.get("/api/tags/popular", params={"limit": 1}).json()[0]
    name, before = first["name"], first["images"]
    with app_engine.connect() as conn:
        keys = conn.execute(text(
            "SELECT i.image_key FROM images i JOIN image_tags t ON t.image_id = i.image_id "
            "JOIN tags g ON g.tag_id = t.tag_id WHERE g.name = :n AND t.source = 'ai' AND t.present AND t.model_version = "
            "(SELECT model_version FROM embedding_models ORDER BY created_at DESC LIMIT 1) "
            "ORDER BY i.image_key LIMIT 2"), {"n": name}).scalars().all()
    assert count(name) == before
    assert reviewer.delete(f"/api/images/{keys[0]}/tags/{name}").status_code == 200
    assert count(name) == before - 1  # this app's write: recounted at once
    assert viewer.get("/api/tags/popular", params={"limit": 200}).json()  # cached again

    with app_engine.begin() as conn:  # a write the app does not see (as the pipeline's would be)
        conn.execute(text(
            "INSERT INTO image_tags (image_id, tag_id, source, model_version, present, reviewer) "
            "SELECT i.image_id, g.tag_id, 'user', '', false, 'elsewhere' FROM images i, tags g "
            "WHERE i.image_key = :k AND g.name = :n"), {"k": keys[1], "n": name})
    assert count(name) == before - 1  # still the cached count
    time.sleep(1.1)
    assert count(name) == before - 2  # recounted once the TTL passed
