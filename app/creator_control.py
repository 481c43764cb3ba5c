"""Creators in control of their data: the ``creator`` role's own view, disputes, and erasure.

* A ``creator`` account (``app.auth.create_creator_user``) is linked to one creator. It opens only
  ``/me`` and ``/api/me/...`` (``app.deps.viewer`` refuses it everything else): its images, the
  tags they carry now, and its disputes.
* ``POST /api/me/disputes`` (or the form on ``/me``): "this tag is wrong". A dispute is a review
  item (reason ``creator_dispute``; the pair's existing item is reopened), recorded in
  ``tag_disputes``; the tag itself changes only when a reviewer decides in the queue.
* ``DELETE /api/creators/{username}`` (admins): the erasure of ``creatorlens forget``
  (:func:`resources.erasure.forget`): every row, blob and cached file, and a tombstone.
"""

from __future__ import annotations

from pathlib import Path as FsPath
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Path, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from pydantic import BaseModel, Field
from sqlalchemy import Connection

from app import auth
from app.deps import Conn, Viewer
from creatorlens.fields import PLATFORM
from creatorlens.queries import load_queries
from resources.blobs import LocalBlobs
from resources.erasure import forget

QUERIES = "creator_role.sql"
router = APIRouter()


def _q(conn: Connection, name: str, **params):
    return conn.exec_driver_sql(load_queries(QUERIES)[name], params)


async def _csrf(request: Request, user: auth.User) -> None:
    """Cookie-authenticated writes carry the CSRF token (header or form field), as app.deps.reviewer demands."""
    if user.via != "session":
        return
    presented = request.headers.get("x-csrf-token")
    if presented is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        presented = (await request.form()).get("csrf_token")
    if not auth.csrf_ok(user, presented if isinstance(presented, str) else None):
        raise HTTPException(403, "missing or wrong CSRF token")


def creator_only(user: Viewer) -> auth.User:
    if not user.is_creator:
        raise HTTPException(403, "creator accounts only")
    return user


async def creator_writer(request: Request, user: Annotated[auth.User, Depends(creator_only)]) -> auth.User:
    await _csrf(request, user)
    return user


async def admin(request: Request, user: Viewer) -> auth.User:
    if not user.is_admin:
        raise HTTPException(403, "admins only")
    await _csrf(request, user)
    return user


Creator = Annotated[auth.User, Depends(creator_only)]
CreatorWriter = Annotated[auth.User, Depends(creator_writer)]
Admin = Annotated[auth.User, Depends(admin)]


def linked_creator(conn: Connection, user: auth.User) -> dict:
    row = _q(conn, "linked_creator", user_id=user.user_id).mappings().first()
    if row is None:  # the creator was forgotten (the account goes with it) or the link is gone
        raise HTTPException(403, "this account is not linked to a creator")
    return dict(row)


def own_view(conn: Connection, creator: dict) -> dict:
    """The creator's ok images with the tags they carry now, and the creator's disputes."""
    version = _q(conn, "newest_model_version").scalar() or ""
    who = {"platform": creator["platform"], "username": creator["username"]}
    images = [dict(r) for r in _q(conn, "own_images", **who).mappings()]
    tags: dict[int, list[dict]] = {}
    for r in _q(conn, "creator_image_tags", model_version=version, **who).mappings():
        tags.setdefault(r["image_id"], []).append(
            {"name": r["name"], "category": r["category"], "source": r["source"], "confidence": r["confidence"]})
    for img in images:
        img["tags"] = tags.get(img.pop("image_id"), [])
    disputes = [dict(r) for r in _q(conn, "creator_disputes", creator_id=creator["creator_id"]).mappings()]
    return {"platform": creator["platform"], "username": creator["username"], "model_version": version or None,
            "images": images, "disputes": disputes}


class DisputeIn(BaseModel):
    image_key: str = Field(max_length=200)
    tag: str = Field(min_length=2, max_length=50)
    note: str | None = Field(default=None, max_length=1000)


def open_dispute(conn: Connection, user: auth.User, creator: dict, body: DisputeIn) -> dict:
    """Record the dispute and open (or reopen) its review item; nothing about the tag changes."""
    image_id = _q(conn, "own_image", image_key=body.image_key, platform=creator["platform"],
                  username=creator["username"]).scalar()
    if image_id is None:
        raise HTTPException(404, f"no image {body.image_key!r} of yours")
    version = _q(conn, "newest_model_version").scalar() or ""
    tag = _q(conn, "disputed_tag", image_id=image_id, tag=body.tag, model_version=version).mappings().first()
    if tag is None:
        raise HTTPException(404, f"unknown tag {body.tag!r}")
    if not tag["carried"]:
        raise HTTPException(409, f"image {body.image_key} does not carry {body.tag!r}: nothing to dispute")
    if tag["model_version"] is not None:  # the model's tag: the item is that version's
        item = {"model_version": tag["model_version"], "confidence": tag["confidence"],
                "threshold": tag["threshold"], "taxonomy_version": tag["taxonomy_version"]}
    else:  # a reviewer added it: no model score; the item stands outside any model version
        item = {"model_version": "", "confidence": 1.0, "threshold": 1.0,
                "taxonomy_version": _q(conn, "latest_taxonomy").scalar()}
        if item["taxonomy_version"] is None:
            raise HTTPException(409, "no taxonomy published yet: nothing to review against")
    review_id = _q(conn, "open_dispute_item", image_id=image_id, tag_id=tag["tag_id"], **item).scalar_one()
    dispute_id = _q(conn, "add_dispute", image_id=image_id, tag_id=tag["tag_id"], creator_id=creator["creator_id"],
                    disputed_by=user.username, note=body.note, review_id=review_id).scalar_one()
    return {"dispute_id": dispute_id, "review_id": review_id, "image_key": body.image_key, "tag": body.tag,
            "status": "pending"}


# ---- API ------------------------------------------------------------------------------------------
@router.get("/api/me/images", tags=["creator"])
def my_images(conn: Conn, user: Creator) -> dict:
    """The creator's own images, the tags they carry now, and the creator's disputes."""
    return own_view(conn, linked_creator(conn, user))


@router.post("/api/me/disputes", tags=["creator"], status_code=201)
def dispute(conn: Conn, user: CreatorWriter, body: DisputeIn) -> dict:
    """Dispute a tag on one of the creator's images: it goes to the review queue."""
    return open_dispute(conn, user, linked_creator(conn, user), body)


@router.delete("/api/creators/{username}", tags=["creator"])
def erase_creator(request: Request, user: Admin, username: Annotated[str, Path(max_length=64)],
                  platform: Annotated[str, Query(max_length=32)] = PLATFORM) -> dict:
    """Forget a creator everywhere (rows, blobs, cached files) and keep them from being re-ingested."""
    blob_root = FsPath(request.app.state.blob_root)
    state_dir = FsPath(getattr(request.app.state, "state_dir", None) or blob_root.parent)  # Settings.blob_root
    report = forget(request.app.state.engine, username, platform=platform, state_dir=state_dir,
                    blob_root=blob_root, parquet_root=state_dir / "parquet", erased_by=f"app:{user.username}")
    return report.as_json()


# ---- pages ----------------------------------------------------------------------------------------
@router.get("/me", include_in_schema=False)
def me_page(request: Request, conn: Conn, user: Creator, done: str | None = None,
            error: str | None = None) -> HTMLResponse:
    view = own_view(conn, linked_creator(conn, user))
    return request.app.state.templates.TemplateResponse(
        request, "me.html", {"user": user, "csrf": user.csrf_token, "view": view, "done": done, "error": error})


@router.post("/me/disputes", include_in_schema=False)
def me_dispute(conn: Conn, user: CreatorWriter, image_key: Annotated[str, Form(max_length=200)],
               tag: Annotated[str, Form(max_length=50)], note: Annotated[str, Form(max_length=1000)] = ""):
    try:
        out = open_dispute(conn, user, linked_creator(conn, user), DisputeIn(image_key=image_key, tag=tag,
                                                                              note=note or None))
    except HTTPException as exc:
        return RedirectResponse(f"/me?error={exc.detail}", status_code=303)
    return RedirectResponse(f"/me?done=dispute+{out['dispute_id']}+sent+to+review", status_code=303)


@router.get("/me/thumbs/{key:path}", include_in_schema=False)
def my_thumb(request: Request, conn: Conn, user: Creator, key: str) -> FileResponse:
    creator = linked_creator(conn, user)
    if _q(conn, "own_thumb", key=key, platform=creator["platform"], username=creator["username"]).first() is None:
        raise HTTPException(404, "no such thumbnail of yours")
    try:
        path = LocalBlobs(request.app.state.blob_root).path(key)
    except ValueError:
        raise HTTPException(404, "no such blob") from None
    if not path.is_file():
        raise HTTPException(404, "no such blob")
    return FileResponse(path, headers={"Cache-Control": "private, max-age=86400"})
