"""Accounts, headers and one review rule (issue 14: defects 8, 9, 10)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import text

from app.auth import create_user, issue_api_token
from app.main import create_app
from orchestration.cli import cli
from tests.app.conftest import PASSWORD, bearer, post_login


@pytest.mark.parametrize("weak", ["12345678", "password", " " * 8, "aaaaaaaaaaaa", "Password1", "qwertyuiop"])
def test_weak_passwords_are_refused(engine, weak) -> None:
    """Defect 8: ``12345678``, ``password`` and eight spaces were accepted."""
    with engine.begin() as conn, pytest.raises(ValueError) as refused:
        create_user(conn, "weak.one", weak, "reviewer")
    assert repr(weak) not in str(refused.value)  # the message never echoes the password


def test_user_add_keeps_the_role_and_a_reset_ends_sessions(tmp_path, database_url, engine) -> None:
    """Defect 8: ``user add NAME`` without ``--role`` demoted a reviewer to viewer; a reset left tokens valid;
    ``user token nosuchuser`` crashed; a refused username printed a traceback with the scrypt hash."""
    env = {"CREATORLENS_STATE_DIR": str(tmp_path / "state"), "DATABASE_URL": database_url,
           "CREATORLENS_APP_PASSWORD": "a long enough password"}
    runner = CliRunner()
    assert runner.invoke(cli, ["app", "user", "add", "rev.one", "--role", "reviewer"], env=env).exit_code == 0
    token = runner.invoke(cli, ["app", "user", "token", "rev.one"], env=env, catch_exceptions=False).output.strip()
    client = TestClient(create_app(engine, tmp_path / "blobs"))
    assert client.get("/api/me", headers=bearer(token)).status_code == 200

    reset = runner.invoke(cli, ["app", "user", "add", "rev.one"],
                          env={**env, "CREATORLENS_APP_PASSWORD": "another long password"})
    assert reset.exit_code == 0 and "rev.one (reviewer) ready" in reset.output
    with engine.connect() as conn:
        assert conn.execute(text("SELECT role FROM app_users WHERE username = 'rev.one'")).scalar_one() == "reviewer"
    assert client.get("/api/me", headers=bearer(token)).status_code == 401  # the reset revoked it

    missing = runner.invoke(cli, ["app", "user", "token", "nosuchuser"], env=env)
    assert missing.exit_code != 0 and "no user" in missing.output and "Traceback" not in missing.output
    bad = runner.invoke(cli, ["app", "user", "add", "Bad Name!"], env=env)
    assert bad.exit_code != 0 and "scrypt" not in bad.output and "Traceback" not in bad.output


def test_pages_and_api_send_security_headers(web_app, tokens) -> None:
    """Defect 9: no CSP, X-Frame-Options, nosniff or Referrer-Policy."""
    client = TestClient(web_app)
    for response in (client.get("/login"), client.get("/api/me", headers=bearer(tokens["viewer"]))):
        assert "default-src 'self'" in response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "same-origin"


def test_correct_settles_the_corrected_to_tags_own_pending_item(web_app, tokens, app_engine) -> None:
    """Defect 10: ``correct`` left the corrected-to tag's own pending item in the queue; rejecting it
    later silently reversed the correction."""
    with app_engine.connect() as conn:
        row = conn.execute(text(
            """
            SELECT a.review_id, b.review_id, gb.name FROM tag_review_queue a
            JOIN tag_review_queue b ON b.image_id = a.image_id AND b.model_version = a.model_version
                 AND b.review_id <> a.review_id AND b.status = 'pending'
            JOIN tags ga ON ga.tag_id = a.tag_id JOIN tags gb ON gb.tag_id = b.tag_id
            WHERE a.status = 'pending' AND NOT ga.exclusive AND NOT gb.exclusive
            ORDER BY a.review_id LIMIT 1""")).one()
    first, second, second_tag = row
    reviewer = TestClient(web_app, headers=bearer(tokens["reviewer"]))
    corrected = reviewer.post(f"/api/review/{first}", json={"action": "correct", "tag": second_tag})
    assert corrected.status_code == 200 and corrected.json()["decisions"][second_tag] is True
    with app_engine.connect() as conn:
        status = conn.execute(text("SELECT status FROM tag_review_queue WHERE review_id = :r"), {"r": second}).scalar_one()
    assert status == "superseded"
    assert reviewer.post(f"/api/review/{second}", json={"action": "reject"}).status_code == 409
    tags_now = {t["name"]: t["source"] for t in
                reviewer.get(f"/api/images/{corrected.json()['image_key']}/tags").json()["tags"]}
    assert tags_now.get(second_tag) == "user"


def test_issued_tokens_still_work_for_users_created_before(app_engine) -> None:
    """Creating a user does not touch other users' tokens (the reset revokes only the reset user's)."""
    with app_engine.begin() as conn:
        before = conn.execute(text("SELECT count(*) FROM app_sessions")).scalar_one()
        issue_api_token(conn, "rita")
        create_user(conn, "new.viewer", "a fine long password")
        after = conn.execute(text("SELECT count(*) FROM app_sessions")).scalar_one()
    assert after == before + 1


def test_failed_logins_are_throttled_per_user_and_unknown_users_cost_one_scrypt(web_app, monkeypatch) -> None:
    """Defect 6: 200 wrong passwords in 12.6 s, then the right one worked; an unknown user cost two
    scrypt runs and a known one one (enumeration by timing)."""
    client = TestClient(web_app)
    for _ in range(10):
        assert post_login(client, {"username": "rita", "password": "wrong password"}).status_code == 401
    locked = post_login(client, {"username": "rita", "password": PASSWORD}, follow_redirects=False)
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0
    other = post_login(client, {"username": "vic", "password": PASSWORD}, follow_redirects=False)
    assert other.status_code == 303  # another user from the same client is not locked out

    import hashlib

    runs = []
    real = hashlib.scrypt
    monkeypatch.setattr(hashlib, "scrypt", lambda *a, **k: runs.append(1) or real(*a, **k))
    fresh = TestClient(web_app)
    post_login(fresh, {"username": "nobody.here", "password": "wrong password"})
    unknown, runs[:] = len(runs), []
    post_login(fresh, {"username": "vic", "password": "wrong password"})
    assert unknown == len(runs) == 1


def test_api_docs_work_offline(web_app) -> None:
    """Defect 9: /docs loaded Swagger UI from a CDN (a blank page offline)."""
    client = TestClient(web_app)
    page = client.get("/docs").text
    assert "cdn." not in page and "/static-offline-docs/swagger-ui-bundle.js" in page
    assert client.get("/static-offline-docs/swagger-ui-bundle.js").status_code == 200
    assert client.get("/openapi.json").json()["info"]["title"] == "creatorlens"


def test_serve_on_a_busy_port_fails_before_creating_the_first_user(tmp_path, database_url, engine) -> None:
    """Defect 11 (second half): a failed bind had already consumed the once-printed admin password."""
    import socket

    busy = socket.create_server(("127.0.0.1", 0))
    try:
        env = {"CREATORLENS_STATE_DIR": str(tmp_path / "state"), "DATABASE_URL": database_url}
        result = CliRunner().invoke(cli, ["app", "serve", "--no-semantic", "--port", str(busy.getsockname()[1])],
                                    env=env)
    finally:
        busy.close()
    assert result.exit_code != 0 and "cannot listen" in result.output and "password" not in result.output
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM app_users")).scalar_one() == 0
