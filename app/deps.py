"""Request dependencies shared by the API and the pages: the user, the request's transaction, roles.

Connections per request (a handler never holds one pooled connection while it waits for another):

* authentication reads the token on a short-lived connection of its own (a plain read, plus a
  throttled, non-blocking ``last_used_at`` update) and gives it back before the handler runs;
* a handler that takes :data:`Conn` gets one connection, opened after authentication; a writing
  request's transaction is committed when the handler returns, **before** the response is sent
  (``Depends(scope="function")``): a 2xx means the write is durable, and a failed commit is an error
  response, never a 2xx. A GET's reads run in autocommit;
* search handlers take no :data:`Conn`: :class:`app.search.HybridSearch` takes its own connections
  one query at a time, or reuses the caller's (``conn=``).

Both routers import these from here, and :mod:`app.main` imports both routers, so nothing
imports ``app.main`` back.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlalchemy import Connection, Engine

from app import auth

# What a creator account may open (app.creator_control); every other viewer route refuses it.
CREATOR_PATHS = ("/me", "/api/me", "/logout")


def creator_may_open(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in CREATOR_PATHS)


class LoginRequired(Exception):
    pass


def presented_token(request: Request) -> tuple[str | None, str]:
    """(token, kind) as the request presents it: a Bearer API token, else the session cookie."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip(), "api"
    return request.cookies.get(auth.SESSION_COOKIE), "session"


def optional_user(request: Request) -> auth.User | None:
    token, kind = presented_token(request)
    if not token:
        return None
    # Released before the handler runs. Autocommit: one statement, no BEGIN/COMMIT round trips.
    with autocommit(request.app.state.engine) as conn:
        return auth.authenticate_and_touch(conn, token, kind)


CurrentUser = Annotated[auth.User | None, Depends(optional_user)]


READS = ("GET", "HEAD")


def autocommit(engine: Engine) -> Connection:
    """A pooled connection in autocommit (use as a context manager): each read is its own statement,
    without BEGIN/COMMIT round trips; ``transaction()`` on its psycopg connection still opens one."""
    return engine.connect().execution_options(isolation_level="AUTOCOMMIT")


@contextmanager
def request_conn(request: Request) -> Iterator[Connection]:
    """The request's connection: autocommit for a GET or HEAD, which writes nothing; otherwise one
    transaction, committed when the block ends. Also what a handler that first runs a search (which
    takes its own connections) opens afterwards, held only in its block."""
    if request.method in READS:
        with autocommit(request.app.state.engine) as conn:
            yield conn
    else:
        with request.app.state.engine.begin() as conn:
            yield conn


def get_conn(request: Request, _user: CurrentUser) -> Iterator[Connection]:
    """One transaction per writing request: every action and its feedback row commit together or not at all.

    Depends on authentication so that it is opened only after the auth connection was given back;
    ``scope="function"`` (in :data:`Conn`) commits it before the response goes out. A GET or HEAD
    reads in autocommit (:func:`request_conn`): no BEGIN and COMMIT round trips around its reads (two
    of a page's four or five; ``driver(conn).transaction()`` still opens a real one where a read
    needs it, as the search's ``SET LOCAL`` settings do)."""
    with request_conn(request) as conn:
        yield conn
    if request.method not in READS:  # a write has committed: tag counts are recounted
        request.app.state.tag_counts.clear()


Conn = Annotated[Connection, Depends(get_conn, scope="function")]


def driver(conn: Connection):
    """The request's psycopg connection (for creatorlens modules written against psycopg); its
    ``transaction()`` blocks become savepoints inside the request's transaction."""
    return conn.connection.driver_connection


def viewer(request: Request, user: CurrentUser) -> auth.User:
    if user is None:
        if request.url.path.startswith("/api/"):
            raise HTTPException(401, "log in or send an API token", headers={"WWW-Authenticate": "Bearer"})
        raise LoginRequired()
    if user.is_creator and not creator_may_open(request.url.path):
        if not request.url.path.startswith("/api/"):  # a page: their own one instead
            raise HTTPException(303, "a creator account sees only its own images and tags", headers={"Location": "/me"})
        raise HTTPException(403, "a creator account sees only its own images and tags: /api/me/...")
    return user


async def reviewer(request: Request, user: Annotated[auth.User, Depends(viewer)]) -> auth.User:
    if not user.is_reviewer:
        raise HTTPException(403, "reviewers only")
    if user.via == "session":  # ambient cookie: demand the CSRF token
        presented = request.headers.get("x-csrf-token")
        if presented is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")
        ):
            presented = (await request.form()).get("csrf_token")
        if not auth.csrf_ok(user, presented if isinstance(presented, str) else None):
            raise HTTPException(403, "missing or wrong CSRF token")
    return user


Viewer = Annotated[auth.User, Depends(viewer)]
Reviewer = Annotated[auth.User, Depends(reviewer)]
