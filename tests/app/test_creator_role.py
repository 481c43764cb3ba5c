"""The creator role: an account linked to one creator sees only that creator's images and tags, and a
dispute becomes a review item (the tag changes only when a reviewer decides). Admins erase creators
through the API; reviewers cannot."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from app.auth import create_creator_user, create_user, issue_api_token
from app.main import create_app
from tests.app.conftest import PASSWORD, bearer, login

OWN = "pixel.thief"


@pytest.fixture
def creator_token(app_engine) -> str:
    with app_engine.begin() as conn:
        create_creator_user(conn, "pixel", PASSWORD, OWN)
        return issue_api_token(conn, "pixel")


def _one(app_engine, sql: str, **params):
    with app_engine.connect() as conn:
        return conn.execute(text(sql), params).all()


def test_creator_sees_only_own_images_and_tags(web_app, app_engine, creator_token) -> None:
    me = TestClient(web_app, headers=bearer(creator_token))
    view = me.get("/api/me/images")
    assert view.status_code == 200, view.text
    body = view.json()
    own = {r[0] for r in _one(app_engine, "SELECT image_key FROM images WHERE username = :u AND status = 'ok'", u=OWN)}
    assert body["username"] == OWN and {i["image_key"] for i in body["images"]} == own and own
    assert any(i["tags"] for i in body["images"])  # the tiny SigLIP tagged them
    # Everything else is closed to a creator account: other creators, search, the queue, blobs.
    for path in ("/api/creators", f"/api/creators/instagram/{OWN}", "/api/tags", "/api/review",
                 "/api/search?q=x"):
        assert me.get(path).status_code == 403, path
    other_thumb = _one(app_engine, "SELECT thumb_key FROM images WHERE username <> :u AND thumb_key IS NOT NULL "
                                   "LIMIT 1", u=OWN)[0][0]
    assert me.get(f"/me/thumbs/{other_thumb}").status_code == 404
    assert me.get(f"/blobs/{other_thumb}", follow_redirects=False).status_code == 303  # pages: back to /me
    # A creator account cannot be made through the generic call, and only for a creator that exists.
    with app_engine.begin() as conn, pytest.raises(ValueError):
        create_user(conn, "x.creator", PASSWORD, "creator")
    with app_engine.begin() as conn, pytest.raises(ValueError, match="no creator"):
        create_creator_user(conn, "ghost", PASSWORD, "nobody.here")


def test_a_dispute_is_a_review_item_not_a_silent_change(web_app, app_engine, creator_token, tokens) -> None:
    me = TestClient(web_app, headers=bearer(creator_token))
    image = next(i for i in me.get("/api/me/images").json()["images"] if i["tags"])
    tag = image["tags"][0]["name"]
    before = _one(app_engine, """SELECT source, present FROM image_tags t JOIN images i USING (image_id)
                                 JOIN tags g USING (tag_id) WHERE i.image_key = :k AND g.name = :t ORDER BY 1""",
                  k=image["image_key"], t=tag)
    made = me.post("/api/me/disputes", json={"image_key": image["image_key"], "tag": tag, "note": "not me"})
    assert made.status_code == 201, made.text
    review_id = made.json()["review_id"]
    # The tag is unchanged; a pending review item with the dispute's reason waits for a reviewer.
    assert _one(app_engine, """SELECT source, present FROM image_tags t JOIN images i USING (image_id)
                               JOIN tags g USING (tag_id) WHERE i.image_key = :k AND g.name = :t ORDER BY 1""",
                k=image["image_key"], t=tag) == before
    assert _one(app_engine, "SELECT reason, status FROM tag_review_queue WHERE review_id = :r", r=review_id) == [
        ("creator_dispute", "pending")]
    reviewer = TestClient(web_app, headers=bearer(tokens["reviewer"]))
    assert reviewer.get("/api/review", params={"limit": 200}).status_code == 200
    assert me.get("/api/me/images").json()["disputes"][0]["status"] == "pending"
    # The reviewer decides: now (and only now) the tag changes, and the creator sees the outcome.
    assert reviewer.post(f"/api/review/{review_id}", json={"action": "reject"}).status_code == 200
    assert me.get("/api/me/images").json()["disputes"][0]["status"] == "rejected"
    assert tag not in {t["name"] for i in me.get("/api/me/images").json()["images"]
                       if i["image_key"] == image["image_key"] for t in i["tags"]}
    # Not their image, or a tag the image does not carry: refused, nothing queued.
    other = _one(app_engine, "SELECT image_key FROM images WHERE username <> :u LIMIT 1", u=OWN)[0][0]
    assert me.post("/api/me/disputes", json={"image_key": other, "tag": tag}).status_code == 404
    assert me.post("/api/me/disputes", json={"image_key": image["image_key"], "tag": tag}).status_code == 409
    # Viewers and reviewers are not creator accounts.
    assert reviewer.post("/api/me/disputes", json={"image_key": other, "tag": tag}).status_code == 403


def test_creator_page_dispute_form_needs_csrf(web_app, app_engine, creator_token) -> None:
    browser = TestClient(web_app)
    csrf = login(browser, "pixel")  # lands on /stats -> redirected to /me
    page = browser.get("/me")
    assert page.status_code == 200 and f"@{OWN}" in page.text and "Dispute" in page.text
    image = next(i for i in TestClient(web_app, headers=bearer(creator_token)).get("/api/me/images").json()["images"]
                 if i["tags"])
    form = {"image_key": image["image_key"], "tag": image["tags"][0]["name"]}
    assert browser.post("/me/disputes", data=form).status_code == 403  # no CSRF token
    sent = browser.post("/me/disputes", data={**form, "csrf_token": csrf}, follow_redirects=True)
    assert sent.status_code == 200 and "sent to review" in sent.text
    assert _one(app_engine, "SELECT count(*) FROM tag_disputes")[0][0] == 1


def test_only_admins_erase_creators_through_the_api(app_engine, filled_warehouse, tokens, tmp_path) -> None:
    app = create_app(app_engine, tmp_path / "state" / "blobs")  # a scratch state folder: the shared one stays
    with app_engine.begin() as conn:
        create_user(conn, "ada", PASSWORD, "admin")
        admin_token = issue_api_token(conn, "ada")
    assert TestClient(app, headers=bearer(tokens["reviewer"])).delete(f"/api/creators/{OWN}").status_code == 403
    done = TestClient(app, headers=bearer(admin_token)).delete(f"/api/creators/{OWN}")
    assert done.status_code == 200, done.text
    assert done.json()["rows"]["creators"] == 1 and done.json()["rows"]["images"] >= 1
    assert _one(app_engine, "SELECT count(*) FROM images WHERE username = :u", u=OWN)[0][0] == 0
    assert len(_one(app_engine, "SELECT 1 FROM creator_tombstones")) == 1
    # An admin is a reviewer too.
    assert TestClient(app, headers=bearer(admin_token)).get("/api/review").status_code == 200
