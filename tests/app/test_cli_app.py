"""`creatorlens app` commands against the embedded PostgreSQL: users, API tokens, the first-start
reviewer, and how serving reports a missing image model (no weights on this machine)."""

from __future__ import annotations

from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import text

from app.auth import ensure_first_user, verify_password
from app.main import create_app
from creatorlens.settings import Settings
from orchestration.cli import cli
from orchestration.cli.app import load_query_embedder
from tests.app.conftest import bearer


def test_user_add_and_token_then_the_token_reads_the_api(tmp_path, database_url, engine) -> None:
    env = {"CREATORLENS_STATE_DIR": str(tmp_path / "state"), "DATABASE_URL": database_url,
           "CREATORLENS_APP_PASSWORD": "a long enough password"}
    runner = CliRunner()
    added = runner.invoke(cli, ["app", "user", "add", "rev.one", "--role", "reviewer"], env=env)
    assert added.exit_code == 0 and "rev.one (reviewer) ready" in added.output
    short = runner.invoke(cli, ["app", "user", "add", "rev.two"], env={**env, "CREATORLENS_APP_PASSWORD": "short"})
    assert short.exit_code != 0 and "at least 8 characters" in short.output
    token = runner.invoke(cli, ["app", "user", "token", "rev.one"], env=env, catch_exceptions=False).output.strip()
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT password_hash FROM app_users WHERE username = 'rev.one'")).scalar_one()
    assert verify_password("a long enough password", stored)
    client = TestClient(create_app(engine, tmp_path / "blobs"))
    assert client.get("/api/me", headers=bearer(token)).json() == {"username": "rev.one", "role": "reviewer"}
    assert "keyword search only" in runner.invoke(cli, ["app", "serve", "--help"], env=env).output


def test_first_start_creates_one_reviewer_and_serving_without_weights_says_how_to_get_them(
        tmp_path, engine) -> None:
    with engine.begin() as conn:
        password = ensure_first_user(conn)
    with engine.begin() as conn:
        assert ensure_first_user(conn) is None  # only when there are no users at all
        assert conn.execute(text("SELECT username, role FROM app_users")).all() == [("admin", "reviewer")]
        stored = conn.execute(text("SELECT password_hash FROM app_users")).scalar_one()
    assert password and verify_password(password, stored)
    embedder, why = load_query_embedder(Settings(state_dir=tmp_path / "state"))
    assert embedder is None and "creatorlens models pull image_embedder" in why


def test_serve_hands_the_search_settings_to_the_app(tmp_path, database_url, monkeypatch) -> None:
    """CREATORLENS_HNSW_EF_SEARCH and CREATORLENS_SEARCH_GIN_FUZZY_LIMIT reach the search the served app runs."""
    import uvicorn

    served: dict = {}
    monkeypatch.setattr(uvicorn, "run", lambda application, **kwargs: served.update(app=application, **kwargs))
    env = {"CREATORLENS_STATE_DIR": str(tmp_path / "state"), "DATABASE_URL": database_url,
           "CREATORLENS_HNSW_EF_SEARCH": "123", "CREATORLENS_SEARCH_GIN_FUZZY_LIMIT": "0"}
    result = CliRunner().invoke(cli, ["app", "serve", "--no-semantic", "--port", "8123"], env=env,
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    tuning = served["app"].state.search.tuning
    assert served["port"] == 8123 and (tuning.ef_search, tuning.gin_fuzzy_search_limit) == (123, 0)


def test_api_tokens_are_listed_without_secrets_expire_and_can_be_revoked(tmp_path, database_url, engine) -> None:
    """Defect 8: API tokens never expired and could not be listed or revoked."""
    env = {"CREATORLENS_STATE_DIR": str(tmp_path / "state"), "DATABASE_URL": database_url,
           "CREATORLENS_APP_PASSWORD": "a long enough password"}
    runner = CliRunner()
    assert runner.invoke(cli, ["app", "user", "add", "tok.user"], env=env).exit_code == 0
    issue = lambda label, *extra: runner.invoke(  # noqa: E731
        cli, ["app", "user", "token", "tok.user", "--label", label, *extra], env=env, catch_exceptions=False
    ).output.strip()
    kept, revoked, expiring = issue("kept"), issue("revoked"), issue("expiring", "--days", "1")
    assert runner.invoke(cli, ["app", "user", "token", "tok.user", "--days", "0"], env=env).exit_code != 0
    client = TestClient(create_app(engine, tmp_path / "blobs"))
    assert all(client.get("/api/me", headers=bearer(t)).status_code == 200 for t in (kept, revoked, expiring))

    listing = runner.invoke(cli, ["app", "user", "tokens", "tok.user"], env=env, catch_exceptions=False).output
    assert [line.split()[3] for line in listing.splitlines()] == ["expiring", "revoked", "kept"]
    with engine.connect() as conn:
        hashes = [bytes(r[0]).hex() for r in conn.execute(text("SELECT token_hash FROM app_sessions"))]
        ids = dict(conn.execute(text("SELECT label, token_id FROM app_sessions WHERE kind = 'api'")).all())
        days = conn.execute(text("SELECT extract(epoch FROM expires_at - created_at) / 86400 FROM app_sessions "
                                 "WHERE label = 'kept'")).scalar_one()
    assert round(days) == 90 and "expires 20" in listing
    assert not any(secret in listing for secret in (kept, revoked, expiring, *hashes))

    done = runner.invoke(cli, ["app", "user", "revoke-token", str(ids["revoked"])], env=env)
    assert done.exit_code == 0 and f"API token {ids['revoked']} revoked" in done.output
    again = runner.invoke(cli, ["app", "user", "revoke-token", str(ids["revoked"])], env=env)
    assert again.exit_code != 0 and "no API token" in again.output and "Traceback" not in again.output
    with engine.begin() as conn:  # the day passes
        conn.execute(text("UPDATE app_sessions SET expires_at = now() - interval '1 second' WHERE label = 'expiring'"))
    assert client.get("/api/me", headers=bearer(revoked)).status_code == 401
    assert client.get("/api/me", headers=bearer(expiring)).status_code == 401
    assert client.get("/api/me", headers=bearer(kept)).status_code == 200
    listing = runner.invoke(cli, ["app", "user", "tokens"], env=env).output
    assert "EXPIRED" in listing and "revoked" not in listing


def test_serve_reads_its_port_from_creatorlens_app_port(tmp_path, database_url, monkeypatch) -> None:
    """Defect 11: `make app` had no port setting (the Makefile passes PORT as --port; both reach here)."""
    import uvicorn

    served: dict = {}
    monkeypatch.setattr(uvicorn, "run", lambda application, **kwargs: served.update(**kwargs))
    env = {"CREATORLENS_STATE_DIR": str(tmp_path / "state"), "DATABASE_URL": database_url,
           "CREATORLENS_APP_PORT": "8125"}
    result = CliRunner().invoke(cli, ["app", "serve", "--no-semantic"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert served["port"] == 8125 and "127.0.0.1:8125" in result.output
