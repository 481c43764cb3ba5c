"""Auth, CSRF and the pages over the backbone tables, through the real app and a warehouse the demo pipeline filled."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import text

from app.auth import hash_password, verify_password
from tests.app.conftest import PASSWORD, bearer, login, post_login


def test_passwords_and_tokens_are_stored_hashed(app_engine, tokens) -> None:
    stored = hash_password("s3cret-pass")
    assert stored.startswith("scrypt$") and "s3cret-pass" not in stored
    assert verify_password("s3cret-pass", stored) and not verify_password("wrong", stored)
    with app_engine.connect() as conn:
        hashes = [bytes(r[0]) for r in conn.execute(text("SELECT token_hash FROM app_sessions"))]
    assert len(hashes) == 2 and all(len(h) == 32 for h in hashes)
    assert not any(t.encode() in h for t in tokens.values() for h in hashes)


def test_reads_need_a_login_and_bad_credentials_are_refused(web_app, tokens) -> None:
    client = TestClient(web_app)
    assert client.get("/api/creators").status_code == 401
    page = client.get("/creators", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/login")
    wrong = post_login(client, {"username": "rita", "password": "nope"}, follow_redirects=False)
    assert wrong.status_code == 401 and "Wrong username or password" in wrong.text
    assert client.get("/api/me", headers=bearer("forged-token")).status_code == 401
    assert client.get("/api/me", headers=bearer(tokens["viewer"])).json() == {"username": "vic", "role": "viewer"}


def test_login_sets_an_httponly_session_and_open_redirects_are_refused(web_app) -> None:
    client = TestClient(web_app)
    response = post_login(client, {"username": "vic", "password": PASSWORD, "next": "//evil.example/x"},
                           follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/"
    assert "httponly" in response.headers["set-cookie"].lower()
    assert client.get("/api/me").json()["username"] == "vic"


def test_a_cross_site_login_post_without_the_form_token_is_refused(web_app, app_engine) -> None:
    """Defect 6: POST /login had no CSRF token (login CSRF: a hostile page logs the victim in as the
    attacker). Without the form's token, or with a token of another browser's form, it is a 403 that
    creates no session and costs no scrypt run."""
    def sessions() -> int:
        with app_engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM app_sessions WHERE kind = 'session'")).scalar_one()

    before = sessions()
    attacker = TestClient(web_app)
    creds = {"username": "vic", "password": PASSWORD, "next": "/"}
    forged = attacker.post("/login", data=creds, headers={"Origin": "https://evil.example"}, follow_redirects=False)
    assert forged.status_code == 403 and "another site" in forged.text
    other_form = TestClient(web_app).get("/login").text  # a token from another browser's form
    start = other_form.index('name="csrf_token" value="') + len('name="csrf_token" value="')
    stolen = other_form[start:other_form.index('"', start)]
    assert attacker.post("/login", data={**creds, "csrf_token": stolen}, follow_redirects=False).status_code == 403
    assert sessions() == before and attacker.get("/api/me").status_code == 401
    ok = post_login(attacker, creds, follow_redirects=False)  # the same browser through the form: logged in
    assert ok.status_code == 303 and attacker.get("/api/me").json()["username"] == "vic"
    assert sessions() == before + 1


def test_logout_needs_the_csrf_token_and_ends_the_session(web_app) -> None:
    client = TestClient(web_app)
    csrf = login(client, "vic")
    assert client.post("/logout", data={"csrf_token": "forged"}).status_code == 403
    assert client.get("/api/me").status_code == 200
    assert client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False).status_code == 303
    client.cookies.clear()
    assert client.get("/api/me").status_code == 401


def test_creators_api_filters_and_detail(web_app, tokens, app_engine) -> None:
    client = TestClient(web_app, headers=bearer(tokens["viewer"]))
    everyone = client.get("/api/creators").json()
    with app_engine.connect() as conn:
        assert len(everyone) == conn.execute(text("SELECT count(*) FROM creators")).scalar_one() == 14
        big = conn.execute(text("SELECT count(*) FROM creators WHERE followers >= 100000")).scalar_one()
        dup_owners = conn.execute(text(
            "SELECT count(DISTINCT (i.platform, i.username)) FROM image_duplicates d "
            "JOIN images i ON i.image_key IN (d.image_key_a, d.image_key_b)")).scalar_one()
    assert len(client.get("/api/creators", params={"min_followers": 100000}).json()) == big
    assert all(c["followers"] >= 100000 for c in client.get("/api/creators", params={"min_followers": 100000}).json())
    assert len(client.get("/api/creators", params={"has_duplicates": True}).json()) == dup_owners > 0
    assert client.get("/api/creators", params={"min_followers": -1}).status_code == 422
    first = everyone[0]
    detail = client.get(f"/api/creators/{first['platform']}/{first['username']}").json()
    assert detail["username"] == first["username"] and detail["images"]
    assert client.get("/api/creators/instagram/nobody_here").status_code == 404


def test_pages_render_gallery_image_with_duplicates_and_stats(web_app, app_engine) -> None:
    client = TestClient(web_app)
    login(client, "vic")
    with app_engine.connect() as conn:
        dup = conn.execute(text("SELECT image_key_a, image_key_b FROM image_duplicates LIMIT 1")).one()
        thumb = conn.execute(text("SELECT thumb_key FROM images WHERE status = 'ok' LIMIT 1")).scalar_one()
        failed = conn.execute(text("SELECT count(*) FROM images WHERE status = 'failed'")).scalar_one()
    gallery = client.get("/")
    assert gallery.status_code == 200 and 'loading="lazy"' in gallery.text
    image = client.get(f"/images/{dup.image_key_a}")
    assert image.status_code == 200 and dup.image_key_b in image.text
    served = client.get(f"/blobs/{thumb}")
    assert served.status_code == 200 and served.content[:2] in (b"\xff\xd8", b"RI", b"\x89P")
    assert client.get("/blobs/../../etc/passwd").status_code == 404
    stats = client.get("/api/stats").json()
    assert sum(s["n"] for s in stats["failures_by_reason"] if s["stage"] == "images") == failed == 6
    assert "batch-00001" in client.get("/stats").text
    with app_engine.connect() as conn:
        seen = conn.execute(text(
            "SELECT v.image_key, v.person_count, v.face_count, i.width FROM image_vision v "
            "JOIN images i USING (image_key) WHERE v.person_count > 0 AND v.face_count > 0 LIMIT 1")).one()
        ocr = conn.execute(text("SELECT image_key, text FROM ocr_texts LIMIT 1")).one()
        x1 = conn.execute(text("SELECT x1 FROM persons WHERE image_key = :k AND person_idx = 0"),
                          {"k": seen.image_key}).scalar_one()
    detail = client.get(f"/images/{seen.image_key}").text
    assert detail.count('class="box person"') == seen.person_count and detail.count('class="box face"') == seen.face_count
    assert f"left: {100 * x1 / seen.width}%" in detail  # boxes are placed in the image's own coordinates
    assert ocr.text in client.get(f"/images/{ocr.image_key}").text
