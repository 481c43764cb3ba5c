"""The object-tag category map (``tag_category_map``): which category each detector label belongs to.

Viewers read it (``GET /api/object-categories``, page ``/objects/categories``); reviewers edit it
(``PUT /api/object-categories/{label}`` or the page's form). An edit changes the map only: the
stored object tags take it when the ``remap_object_categories`` job runs (no image is read); until
then the page and the API say how many stored objects are stale.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, Field
from sqlalchemy import Connection

from app.deps import Conn, Reviewer, Viewer
from creatorlens.queries import load_queries

QUERIES = "objects.sql"
CATEGORY_PATTERN = r"^[a-z][a-z0-9_ -]{0,39}$"  # tag_category_map's CHECK
REMAP_HINT = "run the remap_object_categories job (Dagster UI, or `dagster job launch -j remap_object_categories`)"
router = APIRouter()
Label = Annotated[str, Path(min_length=1, max_length=60)]


def _q(conn: Connection, name: str, **params):
    return conn.exec_driver_sql(load_queries(QUERIES)[name], params)


def category_map(conn: Connection) -> dict:
    rows = [dict(r) for r in _q(conn, "list_map").mappings()]
    stale = _q(conn, "stale_objects").scalar_one()
    return {"labels": rows, "stale_objects": stale, "remap": REMAP_HINT if stale else None}


class CategoryIn(BaseModel):
    category: str = Field(pattern=CATEGORY_PATTERN, max_length=40)


def set_category(conn: Connection, label: str, category: str, who: str) -> dict:
    row = dict(_q(conn, "set_category", label=label.strip().lower(), category=category.strip().lower(),
                  who=who).mappings().one())
    row["stale_objects"] = _q(conn, "stale_objects").scalar_one()
    row["remap"] = REMAP_HINT if row["stale_objects"] else None
    return row


@router.get("/api/object-categories", tags=["tags"])
def list_categories(conn: Conn, user: Viewer) -> dict:
    """Every detector label with its category and how many stored objects carry it."""
    return category_map(conn)


@router.put("/api/object-categories/{label}", tags=["tags"])
def put_category(conn: Conn, user: Reviewer, label: Label, body: CategoryIn) -> dict:
    """Map ``label`` to ``category`` (reviewers); stored object tags follow when the re-map job runs."""
    return set_category(conn, label, body.category, user.username)


@router.get("/objects/categories", include_in_schema=False)
def categories_page(request: Request, conn: Conn, user: Viewer, msg: str | None = None,
                    error: str | None = None) -> HTMLResponse:
    return request.app.state.templates.TemplateResponse(request, "object_categories.html", {
        "user": user, "csrf": user.csrf_token, "map": category_map(conn), "msg": msg, "error": error})


@router.post("/objects/categories", include_in_schema=False)
def categories_form(conn: Conn, user: Reviewer, label: Annotated[str, Form(max_length=60)],
                    category: Annotated[str, Form(max_length=40)]):
    try:
        CategoryIn(category=category.strip().lower())
    except ValueError:
        return RedirectResponse("/objects/categories?error=category:+lowercase+letters,+digits,+spaces,+_+or+-",
                                status_code=303)
    row = set_category(conn, label, category, user.username)
    return RedirectResponse(f"/objects/categories?msg={row['label']}+is+now+{row['category']}", status_code=303)
