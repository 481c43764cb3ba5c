"""Request dependencies shared by the API and the pages: the request's transaction, the user, roles.

Both routers import these from here, and :mod:`app.main` imports both routers, so nothing
imports ``app.main`` back.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlalchemy import Connection

from app import auth


class LoginRequired(Exception):
    pass


def get_conn(request: Request) -> Iterator[Connection]:
    """One transaction per request: every action and its feedback row commit together or not at all."""
    with request.app.state.engine.begin() as conn:
        yield conn


Conn = Annotated[Connection, Depends(get_conn)]


def driver(conn: Connection):
    """The request's psycopg connection (for creatorlens modules written against psycopg); its
    ``transaction()`` blocks become savepoints inside the request's transaction."""
    return conn.connection.driver_connection


def optional_user(request: Request, conn: Conn) -> auth.User | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return auth.authenticate(conn, header[7:].strip(), "api")
    return auth.authenticate(conn, request.cookies.get(auth.SESSION_COOKIE), "session")


def viewer(request: Request, user: Annotated[auth.User | None, Depends(optional_user)]) -> auth.User:
    if user is None:
        if request.url.path.startswith("/api/"):
            raise HTTPException(401, "log in or send an API token", headers={"WWW-Authenticate": "Bearer"})
        raise LoginRequired()
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
