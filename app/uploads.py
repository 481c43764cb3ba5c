"""Photos uploaded for a creator (reviewers): stored content-addressed, then processed and tagged.

``POST /api/creators/{platform}/{username}/uploads`` (multipart, one or more ``file`` parts) and the
creator page's form check every file with the app's upload validation (:func:`app.api.decode_upload`:
the pipeline's decode limits, the pixel cap read from the header before any pixel is decoded), so a
decompression bomb, a corrupt file or a non-image is a 413/422 with its reason and nothing of the
request is stored. Accepted files go to the blob store (``originals/<sha256>``) and become ``uploads``
rows (``sql/015_uploads.sql``), ``pending``; the same bytes for the same creator again are the same row.

The pipeline takes them from there, without anyone running anything: ``upload_sensor`` launches the
image, vision and tagging stages (and their promotion) for the creator's batch, where ``raw_sources``
reads each upload as a post of the creator, and marks them ``processing``; ``upload_status_sensor``
records ``completed`` (image ok and tagged), ``partial`` (image ok, no tags, with why) or ``failed``
(with the reason). ``GET /api/uploads/{id}`` and the creator page show the state, then the tags.
No Dagster here.
"""

from __future__ import annotations

import hashlib
import io
from typing import Annotated
from urllib.parse import quote, urlencode

from fastapi import APIRouter, File, HTTPException, Path, Request, UploadFile
from fastapi.responses import JSONResponse, RedirectResponse
from PIL import Image
from sqlalchemy import Connection

from app import auth, queries
from app.api import MAX_UPLOAD, Platform, Username, decode_upload
from app.deps import Conn, Reviewer, Viewer
from creatorlens.queries import load_queries
from resources.blobs import LocalBlobs

QUERIES = "uploads.sql"
MAX_FILES = 20  # per request; the body limit (app.main.BodyLimit) caps the bytes
_EXT = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tif",
        "HEIF": "heic"}
# States shown with the image's tags (the image row exists and its tags are final for this run).
DONE = ("completed", "partial")

router = APIRouter()
# max_length: the OpenAPI document says maxItems 20, and a 21st photo is a 422 before anything is read
# (schemathesis, stateful phase: the schema allowed any number while the handler answered 413).
Files = Annotated[list[UploadFile], File(description="one or more photos (JPEG, PNG, WebP…)", max_length=MAX_FILES)]


def _q(conn: Connection, name: str, **params):
    return conn.exec_driver_sql(load_queries(QUERIES)[name], params)


def _check(data: bytes) -> str:
    """The file's blob extension, once it passed the app's upload validation (413/422 otherwise)."""
    decode_upload(data)  # raises HTTPException with the reason: too many bytes or pixels, unreadable
    with Image.open(io.BytesIO(data)) as image:  # the header only: decoded above already
        return _EXT.get((image.format or "").upper(), "bin")


def read_files(files: list[UploadFile]) -> list[tuple[bytes, str]]:
    """Every file's bytes and extension, all checked before any is stored."""
    if not files:
        raise HTTPException(422, "attach at least one photo (multipart field 'file')")
    if len(files) > MAX_FILES:
        raise HTTPException(413, f"up to {MAX_FILES} photos per upload")
    checked = []
    for upload in files:
        data = upload.file.read(MAX_UPLOAD + 1)
        try:
            checked.append((data, _check(data)))
        except HTTPException as exc:
            name = upload.filename or "the file"
            raise HTTPException(exc.status_code, f"{name}: {exc.detail}; nothing was stored") from exc
    return checked


def store_uploads(conn: Connection, blob_root, platform: str, username: str, files: list[tuple[bytes, str]],
                  user: auth.User) -> list[dict]:
    """Blobs first (content-addressed, idempotent), then one ``uploads`` row each (the same bytes for
    the same creator: the existing row, ``created`` false)."""
    if not queries.creator_exists(conn, platform, username):
        raise HTTPException(404, f"no creator {platform}/{username}")
    blobs = LocalBlobs(blob_root)
    out = []
    for data, ext in files:
        sha256 = hashlib.sha256(data).hexdigest()
        key = blobs.put(data, "originals", ext, sha256=sha256)
        row = _q(conn, "upload_upsert", platform=platform, username=username, sha256=sha256, blob_key=key,
                 uploaded_by=user.username).one()
        out.append({**get_upload(conn, row.id, with_tags=False), "created": bool(row.created)})
    return out


def get_upload(conn: Connection, upload_id: int, *, with_tags: bool = True) -> dict | None:
    row = _q(conn, "upload_by_id", id=upload_id).mappings().one_or_none()
    if row is None:
        return None
    found = dict(row)
    found["tags"] = []
    if with_tags and found["status"] in DONE:
        tags = queries.image_tags(conn, found["image_key"])
        found["tags"] = tags["tags"] if tags else []
    return found


def creator_uploads(conn: Connection, platform: str, username: str, limit: int = 50) -> list[dict]:
    """The creator's uploads, newest first, each with its state and (once done) its image's tags."""
    rows = [dict(r) for r in _q(conn, "uploads_of_creator", platform=platform, username=username,
                                limit=limit).mappings()]
    for row in rows:
        tags = queries.image_tags(conn, row["image_key"]) if row["status"] in DONE else None
        row["tags"] = tags["tags"] if tags else []
    return rows


@router.post("/api/creators/{platform}/{username}/uploads", tags=["creators"], status_code=201,
             responses={200: {"description": "every photo was uploaded for this creator before: the same rows"}})
def upload_photos(request: Request, conn: Conn, user: Reviewer, platform: Platform, username: Username,
                  file: Files) -> JSONResponse:
    """Upload photos for a creator (reviewers): checked with the pipeline's decode limits, stored
    content-addressed, then processed and tagged by the pipeline (``GET /api/uploads/{id}``).
    201 when a new upload was recorded; 200 when every photo was uploaded for this creator before."""
    stored = store_uploads(conn, request.app.state.blob_root, platform, username, read_files(file), user)
    status = 201 if any(u["created"] for u in stored) else 200
    return JSONResponse({"uploads": [_public(u) for u in stored]}, status_code=status)


def _public(upload: dict) -> dict:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in upload.items()}


@router.get("/api/creators/{platform}/{username}/uploads", tags=["creators"])
def list_uploads(conn: Conn, user: Viewer, platform: Platform, username: Username) -> list[dict]:
    """The creator's uploads, newest first: state (pending → processing → completed/partial/failed),
    reason, run id, and the image's tags once done."""
    if not queries.creator_exists(conn, platform, username):
        raise HTTPException(404, f"no creator {platform}/{username}")
    return creator_uploads(conn, platform, username)


@router.get("/api/uploads/{upload_id}", tags=["creators"])
def upload_state(conn: Conn, user: Viewer, upload_id: Annotated[int, Path(ge=1, le=2**62)]) -> dict:
    """One upload: its state and reason, the run that processed it, its image key and (once
    ``completed`` or ``partial``) the tags its image carries."""
    found = get_upload(conn, upload_id)
    if found is None:
        raise HTTPException(404, f"no upload {upload_id}")
    return found


@router.post("/creators/{platform}/{username}/uploads", include_in_schema=False)
def upload_form(request: Request, conn: Conn, user: Reviewer, platform: str, username: str,
                file: Files) -> RedirectResponse:
    """The creator page's form: back to the page with what was stored, or why nothing was."""
    target = f"/creators/{quote(platform, safe='')}/{quote(username, safe='')}"
    try:
        stored = store_uploads(conn, request.app.state.blob_root, platform, username, read_files(file), user)
    except HTTPException as exc:
        if exc.status_code == 404:
            raise
        return RedirectResponse(f"{target}?{urlencode({'error': str(exc.detail)})}", status_code=303)
    new = sum(u["created"] for u in stored)
    message = f"{new} photo(s) uploaded, {len(stored) - new} already there: processed and tagged shortly"
    return RedirectResponse(f"{target}?{urlencode({'msg': message})}", status_code=303)
