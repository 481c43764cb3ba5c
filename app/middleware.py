"""The base of the app's pure-ASGI middleware (security headers, ``Allow``, NUL refusal).

Pure ASGI rather than Starlette's ``BaseHTTPMiddleware``, which buffers through a task per request
and breaks streaming; each subclass only sees HTTP requests, everything else passes through.
"""

from __future__ import annotations


class HttpMiddleware:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":  # lifespan, websockets: not ours
            await self.app(scope, receive, send)
            return
        await self.handle(scope, receive, send)

    async def handle(self, scope, receive, send) -> None:
        raise NotImplementedError
