"""The app under concurrent use, through a real uvicorn on 127.0.0.1 (issue 14): connections per
request (no pool deadlock), one token shared by many clients, commits before the response, rival
reviewers on one exclusive category. Every loop here is bounded in count and in time."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy import event, text

from app.auth import create_user, issue_api_token
from app.main import create_app
from tests.app.conftest import PASSWORD, bearer, post_login
from tests.support.live import serve_app


def _libpq_url(engine) -> str:
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
def small_pool_app(app_engine, filled_warehouse):
    """The app over an engine with a deliberately small pool (2 connections, no overflow, 5 s wait):
    the 5 + 5 pool of production in miniature, so exhausting it shows in seconds."""
    engine = sa.create_engine(app_engine.url, pool_size=2, max_overflow=0, pool_timeout=5, pool_pre_ping=True)
    embedder = filled_warehouse.models.load("image_embedder")
    yield create_app(engine, filled_warehouse.settings.blob_root, embedder=embedder), engine
    engine.dispose()


def test_concurrent_searches_never_exhaust_the_pool(small_pool_app, tokens) -> None:
    """Defect 1: a request held its auth connection for its whole life while search asked the same pool
    for one or two more; with more concurrent searches than connections every one of them waited."""
    app, _ = small_pool_app
    with serve_app(app) as base, ThreadPoolExecutor(8) as pool:
        def one(i: int) -> int:
            with httpx.Client(base_url=base, headers=bearer(tokens["viewer"]), timeout=30) as client:
                mode = ("keyword", "hybrid")[i % 2]
                return client.get("/api/search", params={"q": "beach", "mode": mode, "limit": 10}).status_code

        started = time.monotonic()
        statuses = list(pool.map(one, range(16)))
    assert statuses == [200] * 16
    assert time.monotonic() - started < 30


def test_a_locked_token_row_does_not_block_its_requests(web_app, tokens, app_engine) -> None:
    """Defect 2: authenticating updated ``last_used_at`` inside the request's transaction, so every
    request with one token queued on that row's lock. Now: a plain read plus a skip-locked touch."""
    with serve_app(web_app) as base, psycopg.connect(_libpq_url(app_engine)) as holder:
        # Another transaction holds the token's row lock (as a concurrent request once did).
        holder.execute("SELECT 1 FROM app_sessions WHERE label = 'cli' FOR UPDATE")
        with httpx.Client(base_url=base, headers=bearer(tokens["viewer"]), timeout=5) as client:
            started = time.monotonic()
            response = client.get("/api/me")
        assert response.status_code == 200 and time.monotonic() - started < 3
        holder.rollback()


def test_one_token_shared_by_twelve_clients(web_app, tokens) -> None:
    """Defect 2 under load: 12 clients, one token, a mixed read loop bounded to 8 requests each."""
    errors: list[object] = []
    with serve_app(web_app) as base:
        def client_loop(i: int) -> int:
            done = 0
            with httpx.Client(base_url=base, headers=bearer(tokens["viewer"]), timeout=30) as client:
                for n in range(8):
                    path, params = [("/api/me", {}), ("/api/tags/popular", {"limit": 5}),
                                    ("/api/search", {"q": "beach", "mode": "keyword", "limit": 5})][(i + n) % 3]
                    response = client.get(path, params=params)
                    if response.status_code != 200:
                        errors.append((path, response.status_code, response.text[:200]))
                    done += 1
            return done

        with ThreadPoolExecutor(12) as pool:
            total = sum(pool.map(client_loop, range(12)))
    assert total == 96 and errors == []


def test_login_commits_before_the_redirect_is_sent(web_app, app_engine) -> None:
    """Defect 4: the request's transaction committed after the response went out, so a login followed
    at once by a read could be refused. A slow commit (0.5 s) makes the race certain on today's code."""
    def slow_commit(conn) -> None:
        time.sleep(0.5)

    event.listen(app_engine, "commit", slow_commit)
    try:
        with serve_app(web_app) as base, psycopg.connect(_libpq_url(app_engine), autocommit=True) as check:
            def sessions() -> int:
                return check.execute("SELECT count(*) FROM app_sessions WHERE kind = 'session'").fetchone()[0]

            before = sessions()
            with httpx.Client(base_url=base, timeout=30) as client:
                response = post_login(client, {"username": "rita", "password": PASSWORD, "next": "/"})
                assert response.status_code == 303
                assert sessions() == before + 1  # visible the moment the redirect arrives
                assert client.get("/api/me").json()["username"] == "rita"
    finally:
        event.remove(app_engine, "commit", slow_commit)


def test_a_write_is_durable_when_its_response_arrives(web_app, tokens, app_engine) -> None:
    """Defect 4 for writes: a 201 must mean the decision and its feedback row are committed."""
    def slow_commit(conn) -> None:
        time.sleep(0.5)

    with app_engine.connect() as conn:
        key = conn.execute(text("SELECT image_key FROM images WHERE status = 'ok' ORDER BY image_key LIMIT 1")).scalar_one()
    event.listen(app_engine, "commit", slow_commit)
    try:
        with serve_app(web_app) as base, psycopg.connect(_libpq_url(app_engine), autocommit=True) as check:
            with httpx.Client(base_url=base, headers=bearer(tokens["reviewer"]), timeout=30) as client:
                response = client.post(f"/api/images/{key}/tags", json={"name": "golden hour"})
            assert response.status_code == 201
            feedback_ids = response.json()["feedback_ids"]
            found = check.execute("SELECT count(*) FROM tag_feedback WHERE feedback_id = ANY(%s)",
                                  (feedback_ids,)).fetchone()[0]
            assert found == len(feedback_ids) > 0
    finally:
        event.remove(app_engine, "commit", slow_commit)


def test_rival_reviewers_on_one_exclusive_category_never_deadlock(web_app, tokens, app_engine) -> None:
    """Defect 5: two reviewers accepting rival tags of one exclusive category on the same image locked
    each other's queue rows in opposite orders (``DeadlockDetected``, a 500). Now the category's items are
    locked in review_id order first: one decision wins, the other finds its item superseded (409)."""
    with app_engine.connect() as conn:
        pairs = [tuple(r) for r in conn.execute(text(
            """
            SELECT (array_agg(q.review_id ORDER BY q.review_id))[1], (array_agg(q.review_id ORDER BY q.review_id))[2]
            FROM tag_review_queue q JOIN tags g ON g.tag_id = q.tag_id
            WHERE q.status = 'pending' AND g.exclusive
            GROUP BY q.image_id, q.model_version, g.category HAVING count(*) >= 2
            ORDER BY 1 LIMIT 12""")).all()]
    assert len(pairs) >= 8, pairs
    with app_engine.begin() as conn:  # two reviewers: their own tokens (a shared one once serialised them)
        create_user(conn, "ruth", PASSWORD, "reviewer")
        token_of = {pair[0]: issue_api_token(conn, "rita") for pair in pairs}
        token_of.update({pair[1]: issue_api_token(conn, "ruth") for pair in pairs})
    outcomes: list[list[int]] = []
    with serve_app(web_app) as base, ThreadPoolExecutor(2) as pool:
        for a, b in pairs:
            barrier = threading.Barrier(2, timeout=10)

            def accept(review_id: int, barrier=barrier) -> int:
                with httpx.Client(base_url=base, headers=bearer(token_of[review_id]), timeout=30) as client:
                    client.get("/api/me")  # connected and authenticated before the race
                    barrier.wait()
                    return client.post(f"/api/review/{review_id}", json={"action": "accept"}).status_code

            outcomes.append(sorted(pool.map(accept, (b, a))))
    assert outcomes == [[200, 409]] * len(pairs)
    with app_engine.connect() as conn:  # consistent: one decision per item, one feedback row per decided tag
        rows = conn.execute(text(
            """
            SELECT q.review_id, q.status, count(f.feedback_id) FROM tag_review_queue q
            LEFT JOIN tag_feedback f ON f.review_id = q.review_id AND f.tag_id = q.tag_id
            WHERE q.review_id = ANY(:ids) GROUP BY q.review_id, q.status"""),
            {"ids": [i for pair in pairs for i in pair]}).all()
    assert sorted(r[1] for r in rows) == sorted(["accepted", "superseded"] * len(pairs))
    assert all(r[2] == 1 for r in rows if r[1] == "accepted")
