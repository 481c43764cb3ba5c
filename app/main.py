"""The FastAPI application: JSON API under ``/api`` (OpenAPI at ``/docs``), server-rendered pages elsewhere.

``create_app(engine, blob_root)`` builds the app over an existing warehouse; ``creatorlens app
serve`` starts it with uvicorn against the same warehouse the pipeline fills.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import psycopg
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import Connection, Engine
from sqlalchemy import exc as sa_exc

from app import auth
from app.search import HybridSearch, SearchUnavailable, UnknownTag
from creatorlens.review import ReviewError, UnknownItem

HERE = Path(__file__).resolve().parent


class LoginRequired(Exception):
    pass


async def _bad_data(request: Request, exc: Exception) -> JSONResponse:
    reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
    return JSONResponse({"detail": f"invalid value: {reason}"}, status_code=422)


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


def create_app(engine: Engine, blob_root: Path | str, *, secure_cookies: bool = False, embedder=None) -> FastAPI:
    """``embedder`` (optional) turns query text / images into vectors for semantic search."""
    app = FastAPI(
        title="creatorlens",
        version="0.1.0",
        description="Tags, creators, hybrid search and the review queue over the creatorlens warehouse.",
    )
    app.state.engine = engine
    app.state.blob_root = Path(blob_root)
    app.state.secure_cookies = secure_cookies
    app.state.embedder = embedder
    app.state.search = HybridSearch(engine, embedder)
    app.state.templates = Jinja2Templates(directory=str(HERE / "templates"))
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.exception_handler(LoginRequired)
    async def _to_login(request: Request, exc: LoginRequired):
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)

    def _error(status: int):
        async def handler(request: Request, exc: Exception):
            return JSONResponse({"detail": str(exc)}, status_code=status)
        return handler

    # Most specific first: Starlette looks handlers up along the exception's MRO.
    app.add_exception_handler(UnknownItem, _error(404))
    app.add_exception_handler(ReviewError, _error(409))  # e.g. the item was already resolved
    app.add_exception_handler(UnknownTag, _error(422))
    app.add_exception_handler(LookupError, _error(404))
    app.add_exception_handler(SearchUnavailable, _error(503))
    app.add_exception_handler(ValueError, _error(422))
    # A value PostgreSQL refuses (a NUL byte in text, a timestamp out of range): the input's fault.
    app.add_exception_handler(sa_exc.DataError, _bad_data)
    app.add_exception_handler(psycopg.DataError, _bad_data)  # the search runs on psycopg directly

    from app import api, pages

    app.include_router(api.router)
    app.include_router(pages.router)
    return app
