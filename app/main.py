"""The FastAPI application: JSON API under ``/api`` (OpenAPI at ``/docs``), server-rendered pages elsewhere.

``create_app(engine, blob_root)`` builds the app over an existing warehouse; ``creatorlens app
serve`` starts it with uvicorn against the same warehouse the pipeline fills, with the settings'
``hnsw_ef_search`` (``CREATORLENS_HNSW_EF_SEARCH``).
"""

from __future__ import annotations

from pathlib import Path

import psycopg
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from fastapi_offline import FastAPIOffline
from sqlalchemy import Engine
from sqlalchemy import exc as sa_exc

from app import api, creator_control, object_categories, pages, queries, uploads
from app.api import MAX_BODY
from app.deps import LoginRequired
from app.http_methods import AllowedMethods
from app.limits import LoginLimits
from app.middleware import HttpMiddleware
from app.nul_bytes import RefuseNul
from app.openapi_doc import describe
from app.search import HybridSearch, SearchTuning, SearchUnavailable, UnknownTag
from assets.tagging.review import ReviewError, UnknownItem
from resources.pgserver import WarehouseUnavailable

HERE = Path(__file__).resolve().parent
RETRY_AFTER_S = 5


class BodyLimit(HttpMiddleware):
    """Refuse request bodies over ``max_bytes`` before reading them: at once (413) when the declared
    ``Content-Length`` is over, else as soon as the bytes received pass it (chunked bodies)."""

    def __init__(self, app, max_bytes: int) -> None:
        super().__init__(app)
        self.max_bytes = max_bytes

    async def handle(self, scope, receive, send) -> None:
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            response = JSONResponse({"detail": f"request bodies up to {self.max_bytes // (1024 * 1024)} MiB"},
                                    status_code=413, headers={"Connection": "close"})
            await response(scope, receive, send)
            return
        received = 0

        async def limited():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413, f"request bodies up to {self.max_bytes // (1024 * 1024)} MiB")
            return message

        await self.app(scope, limited, send)


# Pages: scripts and styles from this origin only (image.html positions its boxes with style
# attributes), no framing, no sniffing, no referrer beyond this origin. The API docs' own page keeps
# its inline bootstrap script, so /docs gets a CSP that allows it.
CSP = ("default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self'; "
       "style-src-attr 'unsafe-inline'; object-src 'none'; base-uri 'self'; form-action 'self'; "
       "frame-ancestors 'none'")
DOCS_CSP = ("default-src 'self'; img-src 'self' data:; script-src 'self' 'unsafe-inline'; "
            "style-src 'self' 'unsafe-inline'; object-src 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = {"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
                    "Referrer-Policy": "same-origin"}


class SecurityHeaders(HttpMiddleware):
    """Adds the headers above to every HTTP response."""

    async def handle(self, scope, receive, send) -> None:
        csp = DOCS_CSP if scope["path"] in ("/docs", "/redoc") else CSP

        async def with_headers(message):
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k.lower().encode(), v.encode()) for k, v in
                         {**SECURITY_HEADERS, "Content-Security-Policy": csp}.items() if k.lower().encode() not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)


async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    """The warehouse is down or overloaded (connection refused or lost, pool exhausted): 503 with
    Retry-After, as JSON; the pool's pre-ping replaces dead connections, so the app recovers by itself."""
    return JSONResponse({"detail": "the warehouse is unavailable right now: try again shortly"},
                        status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})


async def _bad_data(request: Request, exc: Exception) -> JSONResponse:
    reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
    return JSONResponse({"detail": f"invalid value: {reason}"}, status_code=422)


def create_app(engine: Engine, blob_root: Path | str, *, secure_cookies: bool = False, embedder=None,
               ef_search: int | None = None, gin_fuzzy_search_limit: int | None = None) -> FastAPI:
    """``embedder`` (optional) turns query text / images into vectors for semantic search;
    ``ef_search`` is the HNSW candidate list of its index scans (``Settings.hnsw_ef_search``) and
    ``gin_fuzzy_search_limit`` the keyword half's (``Settings.search_gin_fuzzy_limit``); None:
    ``SearchTuning``'s defaults."""
    # Swagger UI and ReDoc served from this app (fastapi-offline's bundle), not a CDN: /docs works offline.
    app: FastAPI = FastAPIOffline(
        title="creatorlens",
        version="0.1.0",
        description="Tags, creators, hybrid search and the review queue over the creatorlens warehouse.",
    )
    app.state.engine = engine
    app.state.blob_root = Path(blob_root)
    app.state.secure_cookies = secure_cookies
    app.state.embedder = embedder
    app.state.login_limits = LoginLimits()
    app.state.tag_counts = queries.TagCounts()
    given = {"ef_search": ef_search, "gin_fuzzy_search_limit": gin_fuzzy_search_limit}
    tuning = SearchTuning(**{k: v for k, v in given.items() if v is not None})
    app.state.search = HybridSearch(engine, embedder, tuning=tuning)
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
    app.add_exception_handler(UnknownTag, _error(404))  # a tag filter naming no tag
    app.add_exception_handler(LookupError, _error(404))
    app.add_exception_handler(SearchUnavailable, _error(503))
    app.add_exception_handler(ValueError, _error(422))
    # A value PostgreSQL refuses (a NUL byte in text, a timestamp out of range): the input's fault.
    app.add_exception_handler(sa_exc.DataError, _bad_data)
    app.add_exception_handler(psycopg.DataError, _bad_data)  # the search runs on psycopg directly
    # Outages: the database refused or dropped the connection, or the pool had none to give in time.
    for outage in (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError, psycopg.OperationalError,
                   psycopg.InterfaceError, WarehouseUnavailable):
        app.add_exception_handler(outage, _unavailable)
    app.add_middleware(RefuseNul)  # a NUL in the path or query: 422 before any handler
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY)
    app.add_middleware(AllowedMethods)  # OPTIONS, and every 405, name all of a path's methods
    app.add_middleware(SecurityHeaders)

    app.include_router(api.router)
    app.include_router(creator_control.router)
    app.include_router(object_categories.router)
    app.include_router(uploads.router)
    app.include_router(pages.router)
    describe(app)  # the OpenAPI document: every status the API answers (app.openapi_doc)
    return app
