"""``OPTIONS`` and ``405`` name every method a path supports (issue 14, defect 9).

Starlette answers a method a path does not take with the ``Allow`` of the first route whose path
matched, so ``/api/images/{key}/tags`` (a GET route and a POST route) said ``Allow: GET``; and it
answers ``OPTIONS`` with a 405. :class:`AllowedMethods` puts the union of every matching route's
methods in the ``Allow`` of each 405, and answers ``OPTIONS`` on a known path with 204 and that
``Allow`` (no credentials needed: it says only what the OpenAPI document already says).
"""

from __future__ import annotations

from fastapi.routing import iter_route_contexts
from starlette.responses import Response
from starlette.routing import compile_path

from app.middleware import HttpMiddleware


def _route_table(app) -> list[tuple[object, str, frozenset[str]]]:
    """(path regex, path template, methods) of every route with methods, in routing order (FastAPI
    nests included routers)."""
    table = getattr(app.state, "_allow_table", None)
    if table is None:
        table = [(compile_path(rc.path)[0], rc.path, frozenset(rc.methods)) for rc in iter_route_contexts(app.routes)
                 if rc.path and getattr(rc, "methods", None)]
        app.state._allow_table = table
    return table


def allowed_methods(app, scope) -> set[str]:
    """The methods of the resource the path names: its template is the first route's (in routing
    order) that matches, so /api/creators/match is the brief's POST, not /api/creators/{username}."""
    table = _route_table(app)
    template = next((path for regex, path, _ in table if regex.match(scope["path"])), None)
    if template is None:
        return set()
    return {"OPTIONS"}.union(*(methods for _, path, methods in table if path == template))


class AllowedMethods(HttpMiddleware):
    async def handle(self, scope, receive, send) -> None:
        application = scope.get("app")
        if scope["method"] == "OPTIONS":
            methods = allowed_methods(application, scope)
            if methods:
                await Response(status_code=204, headers={"Allow": ", ".join(sorted(methods))})(scope, receive, send)
                return

        async def with_allow(message):
            if message["type"] == "http.response.start" and message["status"] == 405:
                methods = allowed_methods(application, scope)
                if methods:
                    headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"allow"]
                    headers.append((b"allow", ", ".join(sorted(methods)).encode()))
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_allow)

