"""Text with a NUL byte is refused up front, the same way everywhere (issue 14, defect 9).

PostgreSQL cannot store U+0000 in text, so such a value was refused only where it happened to reach
the database (a 422 from the driver's DataError) and accepted where it did not (a semantic search
query is embedded, never stored). :class:`RefuseNul` answers 422 for a NUL in the path or the query
string before any handler runs, and the OpenAPI document says so (``app.openapi_doc`` gives
free-text strings ``pattern: ^[^\\x00]*$``). In JSON bodies a field's own pattern refuses it
(tag names, a flag's reason), or PostgreSQL does where the text is stored (a note): a 422 either
way. Properties a body does not define are ignored, NUL or not, as the schema allows.
"""

from __future__ import annotations

from starlette.responses import JSONResponse

from app.middleware import HttpMiddleware

DETAIL = "text values must not contain NUL (0x00) characters"


class RefuseNul(HttpMiddleware):
    async def handle(self, scope, receive, send) -> None:
        if "\x00" in scope["path"] or b"%00" in scope.get("query_string", b""):
            await JSONResponse({"detail": DETAIL}, status_code=422)(scope, receive, send)
            return
        await self.app(scope, receive, send)
