"""The OpenAPI document says what the API really answers (issue 14, defect 9).

FastAPI documents a route's success and, for routes with parameters, a 422 shaped as its own
validation error (``{"detail": [{loc, msg, type}, ...]}``). The app answers more than that, from
dependencies and exception handlers FastAPI cannot see, so :func:`describe` adds to each ``/api``
operation, from the route's own dependencies and shape:

* 401 (no or a dead credential) and 403 (a viewer writing, a wrong CSRF token, a creator account
  outside its own pages) on every route that needs a user (``app.deps.viewer``), and the two
  ways to send one (``Authorization: Bearer`` API token, the session cookie) as security schemes;
* 404 where a path names a resource, or the route looks one up (an image to search around, a tag
  to filter by);
* 409 on writes (a review item someone else already decided; an open flag);
* 400 (a body that cannot be parsed) and 413 (a body over the limit) where there is a body;
* 503 with ``Retry-After`` everywhere (the warehouse is down or overloaded);
* free-text strings of requests ``pattern: ^[^\x00]*$`` (``app.nul_bytes`` refuses NUL: 422);
* one error body for every 4xx/5xx: ``{"detail": <string> | <FastAPI's validation error list>}``
  (the app's own refusals are a string; a request FastAPI refused before the handler is a list).
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts

from app import deps

WRITES = {"POST", "PUT", "PATCH", "DELETE"}
READS_BY_POST = {"/api/creators/match", "/api/search/image"}  # a brief or a photo in the body; nothing stored
LOOKS_UP = {"/api/search", "/api/search/similar/{image_key}"}  # an unknown tag filter; an image without a vector
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
PROBLEM = {
    "title": "Problem",
    "type": "object",
    "required": ["detail"],
    "properties": {"detail": {"anyOf": [
        {"type": "string", "description": "the app's own refusal, in words"},
        {"type": "array", "items": {"$ref": "#/components/schemas/ValidationError"},
         "description": "a request refused before the handler ran: which field, and why"},
    ]}},
}
SECURITY_SCHEMES = {
    "apiToken": {"type": "http", "scheme": "bearer",
                 "description": "`creatorlens app user token NAME`: Authorization: Bearer <token>"},
    "session": {"type": "apiKey", "in": "cookie", "name": "creatorlens_session",
                "description": "the browser session from POST /login; writes also need X-CSRF-Token"},
}
WHY = {
    "400": "the body could not be parsed",
    "401": "no credentials, or an expired or revoked token",
    "403": "not allowed for this role (or a missing CSRF token on a cookie-authenticated write)",
    "404": "no such resource",
    "409": "conflicts with the current state (e.g. the review item was already decided)",
    "413": "the body is over the size limit",
    "422": "invalid input: FastAPI's field list, or the app's refusal in words",
    "503": "the warehouse (or the search model) is unavailable: retry after Retry-After seconds",
}


NO_NUL = r"^[^\x00]*$"  # what app.nul_bytes enforces for every text value


def _no_nul(node, components: dict, seen: set) -> None:
    """Give every free-text string of a request (no pattern, enum, format or media type of its own)
    the NUL-free pattern, through $ref, properties, items and anyOf/oneOf/allOf."""
    if isinstance(node, list):
        for item in node:
            _no_nul(item, components, seen)
        return
    if not isinstance(node, dict):
        return
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
        name = ref.rsplit("/", 1)[1]
        if name not in seen:
            seen.add(name)
            _no_nul(components.get(name), components, seen)
        return
    if node.get("type") == "string" and not {"pattern", "enum", "const", "format", "contentMediaType"} & set(node):
        node["pattern"] = NO_NUL
    for key in ("properties", "patternProperties"):
        for sub in (node.get(key) or {}).values():
            _no_nul(sub, components, seen)
    for key in ("items", "additionalProperties", "anyOf", "oneOf", "allOf", "not"):
        if key in node:
            _no_nul(node[key], components, seen)


def _calls(dependant) -> set:
    found = set()
    for sub in dependant.dependencies:
        found.add(sub.call)
        found |= _calls(sub)
    return found


def _add(operation: dict, status: str) -> None:
    response = operation["responses"].setdefault(status, {"description": WHY[status]})
    response["content"] = {"application/json": {"schema": PROBLEM_REF}}
    if status == "503":
        response["headers"] = {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}}
    if status == "401":
        response["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}


def document(app: FastAPI) -> dict:
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {})["Problem"] = PROBLEM
    components["schemas"].setdefault("ValidationError", {
        "title": "ValidationError", "type": "object", "required": ["loc", "msg", "type"],
        "properties": {"loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
                       "msg": {"type": "string"}, "type": {"type": "string"}}})
    components["schemas"].pop("HTTPValidationError", None)
    components["securitySchemes"] = SECURITY_SCHEMES
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if not (isinstance(route, APIRoute) and route.include_in_schema and (context.path or "").startswith("/api/")):
            continue
        calls = _calls(route.dependant)
        for method in context.methods:
            operation = schema["paths"].get(context.path, {}).get(method.lower())
            if operation is None:
                continue
            statuses = {"503"}
            if deps.viewer in calls:
                statuses |= {"401", "403"}
                operation["security"] = [{"apiToken": []}, {"session": []}]
            if route.dependant.path_params or context.path in LOOKS_UP:
                statuses.add("404")
            if method in WRITES and context.path not in READS_BY_POST:
                statuses.add("409")
            if route.body_field is not None:
                statuses |= {"400", "413"}
            if route.dependant.path_params or route.dependant.query_params or route.body_field is not None:
                statuses.add("422")
            for parameter in operation.get("parameters", []):
                _no_nul(parameter.get("schema"), components["schemas"], set())
            for media in operation.get("requestBody", {}).get("content", {}).values():
                _no_nul(media.get("schema"), components["schemas"], set())
            for status in sorted(statuses):
                _add(operation, status)
    return schema


def describe(app: FastAPI) -> None:
    """Serve :func:`document` (built once) as the app's OpenAPI document."""
    def openapi() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = document(app)
        return app.openapi_schema

    app.openapi = openapi
