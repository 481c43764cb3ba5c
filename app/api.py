"""JSON API (OpenAPI at /docs). Reads need a logged-in viewer; writes need a reviewer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from app import queries
from app.main import Conn, Viewer

router = APIRouter(prefix="/api", tags=["api"])


@router.get("/me")
def me(user: Viewer) -> dict:
    return {"username": user.username, "role": user.role}


@router.get("/creators")
def creators(
    conn: Conn,
    user: Viewer,
    min_followers: Annotated[int | None, Query(ge=0)] = None,
    max_followers: Annotated[int | None, Query(ge=0)] = None,
    is_business: bool | None = None,
    is_verified: bool | None = None,
    has_duplicates: bool | None = None,
    country: Annotated[str | None, Query(max_length=64)] = None,
    category: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = queries.PAGE_SIZE,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[dict]:
    flt = queries.CreatorFilter(
        min_followers=min_followers, max_followers=max_followers, is_business=is_business,
        is_verified=is_verified, has_duplicates=has_duplicates, country=country, category=category,
    )
    return queries.list_creators(conn, flt, limit, offset)


@router.get("/creators/{platform}/{username}")
def creator(conn: Conn, user: Viewer, platform: str, username: str) -> dict:
    found = queries.get_creator(conn, platform, username)
    if found is None:
        raise HTTPException(404, f"no creator {platform}/{username}")
    return found


@router.get("/images/{image_key}")
def image(conn: Conn, user: Viewer, image_key: str) -> dict:
    found = queries.get_image(conn, image_key)
    if found is None:
        raise HTTPException(404, f"no image {image_key}")
    return found


@router.get("/stats")
def stats(conn: Conn, user: Viewer) -> dict:
    return queries.stats(conn)
