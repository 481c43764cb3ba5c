"""Tag API and review actions through the real app, against a warehouse the pipeline filled and tagged
(a tiny random SigLIP, so the review queue is full of low-confidence items). Every decision must write
the reviewer's ``user`` tag row and a ``tag_feedback`` label in the same transaction."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import text

from tests.app.conftest import bearer, login


def effective_count(conn, tag: str) -> int:
    """Images carrying ``tag`` now, computed independently of the app's query."""
    version = conn.execute(text("SELECT model_version FROM embedding_models ORDER BY created_at DESC LIMIT 1")).scalar()
    return conn.execute(text(
        """
        SELECT count(DISTINCT i.image_id) FROM images i JOIN tags g ON g.name = :tag
        WHERE EXISTS (SELECT 1 FROM image_tags u WHERE u.image_id = i.image_id AND u.tag_id = g.tag_id
                      AND u.source = 'user' AND u.present)
           OR (EXISTS (SELECT 1 FROM image_tags a WHERE a.image_id = i.image_id AND a.tag_id = g.tag_id
                       AND a.source = 'ai' AND a.model_version = :v)
               AND NOT EXISTS (SELECT 1 FROM image_tags u WHERE u.image_id = i.image_id AND u.tag_id = g.tag_id
                               AND u.source = 'user'))
        """), {"tag": tag, "v": version}).scalar_one()


def feedback(conn, image_key: str) -> list[tuple]:
    return [tuple(r) for r in conn.execute(text(
        "SELECT g.name, f.label, f.action, f.reviewer FROM tag_feedback f JOIN tags g ON g.tag_id = f.tag_id "
        "JOIN images i ON i.image_id = f.image_id WHERE i.image_key = :k ORDER BY f.feedback_id"), {"k": image_key})]


def test_tag_lists_counts_popular_and_autocomplete(web_app, tokens, app_engine) -> None:
    client = TestClient(web_app, headers=bearer(tokens["viewer"]))
    listed = client.get("/api/tags", params={"limit": 200}).json()
    with app_engine.connect() as conn:
        assert len(listed) == conn.execute(text("SELECT count(*) FROM tags")).scalar_one() == 59
        for row in listed[:10]:
            assert row["images"] == effective_count(conn, row["name"]), row
    popular = client.get("/api/tags/popular", params={"limit": 5}).json()
    assert [p["images"] for p in popular] == sorted((p["images"] for p in popular), reverse=True)
    assert popular[0]["images"] == max(row["images"] for row in listed) > 0

    scene = client.get("/api/tags/suggest", params={"prefix": "scene_b"}).json()
    assert [t["name"] for t in scene] == ["scene_beach"]
    by_word = {t["name"] for t in client.get("/api/tags/suggest", params={"prefix": "beach"}).json()}
    assert "scene_beach" in by_word  # a word inside the name counts
    assert client.get("/api/tags/suggest", params={"prefix": "x%"}).status_code == 422
    assert client.get("/api/tags/suggest", params={"prefix": "zzz"}).json() == []


def test_reviewer_adds_and_removes_tags_with_feedback_in_one_transaction(web_app, tokens, app_engine) -> None:
    reviewer = TestClient(web_app, headers=bearer(tokens["reviewer"]))
    viewer = TestClient(web_app, headers=bearer(tokens["viewer"]))
    with app_engine.connect() as conn:
        key = conn.execute(text("SELECT image_key FROM images WHERE status = 'ok' ORDER BY image_key LIMIT 1")).scalar_one()
    before = reviewer.get(f"/api/images/{key}/tags").json()
    carried = {t["name"] for t in before["tags"]}
    assert before["rows"] and all(t["source"] == "ai" for t in before["tags"])
    assert all(r["confidence"] >= r["threshold"] for r in before["rows"] if r["source"] == "ai")

    # Writes: reviewers only, and names are validated before anything is written.
    assert TestClient(web_app).post(f"/api/images/{key}/tags", json={"name": "golden hour"}).status_code == 401
    assert viewer.post(f"/api/images/{key}/tags", json={"name": "golden hour"}).status_code == 403
    for bad in ["Golden Hour", "x", "a" * 51, "golden!hour", "-golden", "golden  hour"]:
        assert reviewer.post(f"/api/images/{key}/tags", json={"name": bad}).status_code == 422, bad
    refused = reviewer.post(f"/api/images/{key}/tags", json={"name": "curvy model"})
    assert refused.status_code == 422 and "refused" in refused.json()["detail"]
    with app_engine.connect() as conn:
        assert feedback(conn, key) == []
        assert conn.execute(text("SELECT count(*) FROM tags WHERE origin = 'user'")).scalar_one() == 0

    added = reviewer.post(f"/api/images/{key}/tags", json={"name": "golden hour", "note": "warm light"})
    assert added.status_code == 201 and added.json()["decisions"] == {"golden hour": True}
    removed_name = sorted(carried)[0]
    removed = reviewer.delete(f"/api/images/{key}/tags/{removed_name}")
    assert removed.status_code == 200 and removed.json()["decisions"] == {removed_name: False}

    after = {t["name"]: t for t in reviewer.get(f"/api/images/{key}/tags").json()["tags"]}
    assert after["golden hour"]["source"] == "user" and after["golden hour"]["reviewer"] == "rita"
    assert removed_name not in after
    with app_engine.connect() as conn:
        assert feedback(conn, key) == [("golden hour", True, "added", "rita"), (removed_name, False, "removed", "rita")]
        assert conn.execute(text("SELECT category, origin FROM tags WHERE name = 'golden hour'")).one() == ("custom", "user")
        assert effective_count(conn, "golden hour") == 1
    assert reviewer.delete(f"/api/images/{key}/tags/no-such-tag").status_code == 404
    assert reviewer.post("/api/images/instagram:nope/tags", json={"name": "golden hour"}).status_code == 404


def test_review_queue_accept_reject_correct_and_conflicts(web_app, tokens, app_engine) -> None:
    reviewer = TestClient(web_app, headers=bearer(tokens["reviewer"]))
    queue = reviewer.get("/api/review", params={"limit": 200}).json()
    assert len(queue) == 200
    assert all(q["confidence"] < q["threshold"] for q in queue if q["reason"] == "low_confidence")
    low = [q for q in queue if q["reason"] == "low_confidence" and q["category"] == "topic"]
    first, second, third = low[0], low[1], low[2]

    accepted = reviewer.post(f"/api/review/{first['review_id']}", json={"action": "accept"})
    assert accepted.status_code == 200 and accepted.json()["status"] == "accepted"
    assert reviewer.post(f"/api/review/{first['review_id']}", json={"action": "reject"}).status_code == 409
    rejected = reviewer.post(f"/api/review/{second['review_id']}", json={"action": "reject"}).json()
    assert rejected["decisions"] == {second["tag"]: False}
    assert reviewer.post(f"/api/review/{third['review_id']}", json={"action": "correct"}).status_code == 422
    corrected = reviewer.post(f"/api/review/{third['review_id']}", json={"action": "correct", "tag": "scene_beach"})
    assert corrected.json()["decisions"][third["tag"]] is False and corrected.json()["decisions"]["scene_beach"] is True
    assert reviewer.post("/api/review/999999999", json={"action": "accept"}).status_code == 404

    with app_engine.connect() as conn:
        statuses = dict(conn.execute(text(
            "SELECT review_id, status FROM tag_review_queue WHERE review_id = ANY(:ids)"),
            {"ids": [first["review_id"], second["review_id"], third["review_id"]]}).all())
        labels = conn.execute(text(
            "SELECT count(*) FROM tag_feedback WHERE review_id = ANY(:ids)"),
            {"ids": [first["review_id"], second["review_id"], third["review_id"]]}).scalar_one()
        user_row = conn.execute(text(
            "SELECT t.present, t.reviewer FROM image_tags t JOIN images i ON i.image_id = t.image_id "
            "JOIN tags g ON g.tag_id = t.tag_id WHERE i.image_key = :k AND g.name = :tag AND t.source = 'user'"),
            {"k": first["image_key"], "tag": first["tag"]}).one()
    assert statuses == {first["review_id"]: "accepted", second["review_id"]: "rejected",
                        third["review_id"]: "corrected"}
    assert labels >= 4 and tuple(user_row) == (True, "rita")
    tags_now = {t["name"]: t["source"] for t in reviewer.get(f"/api/images/{first['image_key']}/tags").json()["tags"]}
    assert tags_now[first["tag"]] == "user"


def test_cookie_writes_need_csrf_and_adding_a_queued_tag_accepts_its_item(web_app, app_engine) -> None:
    client = TestClient(web_app)
    csrf = login(client, "rita")
    item = client.get("/api/review", params={"limit": 1}).json()[0]
    body = {"name": item["tag"]}
    assert client.post(f"/api/images/{item['image_key']}/tags", json=body).status_code == 403
    assert client.post(f"/api/images/{item['image_key']}/tags", json=body,
                       headers={"X-CSRF-Token": "forged"}).status_code == 403
    done = client.post(f"/api/images/{item['image_key']}/tags", json=body, headers={"X-CSRF-Token": csrf})
    assert done.status_code == 201 and done.json()["status"] == "accepted"
    assert done.json()["review_id"] == item["review_id"]
    flag = client.post(f"/api/images/{item['image_key']}/flag", json={"reason": "blurry crop"},
                       headers={"X-CSRF-Token": csrf})
    assert flag.status_code == 201
    again = client.post(f"/api/images/{item['image_key']}/flag", json={"reason": "still blurry"},
                        headers={"X-CSRF-Token": csrf})
    assert again.json()["flag_id"] == flag.json()["flag_id"]  # one open flag per image
    with app_engine.connect() as conn:
        assert conn.execute(text("SELECT reason, flagged_by FROM image_flags")).all() == [("still blurry", "rita")]
    assert client.get("/api/stats").json()["review"]["open_flags"] == 1


def test_review_page_forms_act_and_report_refusals(web_app, app_engine) -> None:
    client = TestClient(web_app)
    csrf = login(client, "rita")
    page = client.get("/review")
    assert page.status_code == 200 and page.text.count('class="queue-item"') == 50
    item = client.get("/api/review", params={"limit": 1}).json()[0]
    no_csrf = client.post(f"/review/{item['review_id']}", data={"action": "accept"})
    assert no_csrf.status_code == 403
    done = client.post(f"/review/{item['review_id']}", data={"action": "accept", "csrf_token": csrf},
                       follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"].startswith("/review?msg=")
    twice = client.post(f"/review/{item['review_id']}", data={"action": "accept", "csrf_token": csrf})
    assert twice.status_code == 200 and "already accepted" in twice.text
    bad = client.post(f"/images/{item['image_key']}/tags", data={"name": "Not Valid!", "csrf_token": csrf})
    assert "use 2–50 lowercase letters" in bad.text
    image_page = client.get(f"/images/{item['image_key']}")
    assert f'data-tag="{item["tag"]}"' in image_page.text and "rita" in image_page.text
    viewer = TestClient(web_app)
    login(viewer, "vic")
    assert "reviewers decide" in viewer.get("/review").text and 'data-action="approve"' not in viewer.get("/review").text
