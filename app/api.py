"""JSON API (OpenAPI at /docs). Reads need a logged-in viewer; writes need a reviewer.

Every statement binds its values (SQLAlchemy ``text`` with ``:name`` or psycopg ``%(name)s``);
review actions go through :mod:`assets.tagging.review`, which writes the ``user`` tag row and the
``tag_feedback`` row in one transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, File, HTTPException, Path, Query, Request, UploadFile
from pydantic import BaseModel, ConfigDict, Field, model_validator

from app import queries
from app.deps import Conn, Reviewer, Viewer, driver
from app.search import MODES, SearchFilters
from assets.images.imaging import ImageError, ImageLimits, decode_image
from assets.tagging import review
from assets.tagging.history import tag_history

router = APIRouter(prefix="/api")

# Tag names as typed: the rule for new tags (lowercase letters, digits, spaces, hyphens) plus the
# underscores of the taxonomy's own snake_case names; assets.tagging.review applies the strict rule to new ones.
TagName = Annotated[str, Field(min_length=2, max_length=50, pattern=r"^[a-z0-9][a-z0-9 _-]*[a-z0-9]$")]
TagQuery = Annotated[str | None, Query(min_length=2, max_length=50, pattern=r"^[a-z0-9][a-z0-9 _-]*[a-z0-9]$")]
Username = Annotated[str, Path(max_length=64)]
Platform = Annotated[str, Path(max_length=32)]
ImageKey = Annotated[str, Path(max_length=200)]
Limit = Annotated[int, Query(ge=1, le=200)]
Offset = Annotated[int, Query(ge=0, le=1_000_000)]
MAX_UPLOAD = 20 * 1024 * 1024
# Free text that must say something: a non-space character, and no NUL (app.nul_bytes).
NOT_BLANK = r"^[^\x00]*\S[^\x00]*$"
# The pipeline's own decode limits (pixel cap checked from the header, before any pixel is decoded),
# with the upload's byte limit. Request bodies over MAX_BODY are refused before they are read
# (app.main.BodyLimit).
UPLOAD_LIMITS = ImageLimits(max_bytes=MAX_UPLOAD)
MAX_BODY = MAX_UPLOAD + 1024 * 1024


class Me(BaseModel):
    username: str
    role: str


@router.get("/me", tags=["auth"])
def me(user: Viewer) -> Me:
    return Me(username=user.username, role=user.role)


# ---- tags -----------------------------------------------------------------------------------
@router.get("/tags", tags=["tags"])
def tags(request: Request, conn: Conn, user: Viewer, category: Annotated[str | None, Query(max_length=64)] = None,
         limit: Limit = 200, offset: Offset = 0) -> list[dict]:
    """Every tag with how many images carry it now (a reviewer's decision wins over the newest model).
    Counts are cached for a few seconds; this app's own writes refresh them at once."""
    return request.app.state.tag_counts.get(conn, category=category, limit=limit, offset=offset)


@router.get("/tags/popular", tags=["tags"])
def popular_tags(request: Request, conn: Conn, user: Viewer,
                 category: Annotated[str | None, Query(max_length=64)] = None, limit: Limit = 20) -> list[dict]:
    """The most used tags, most images first."""
    return request.app.state.tag_counts.get(conn, category=category, order="popular", limit=limit)


@router.get("/tags/suggest", tags=["tags"])
def suggest_tags(request: Request, conn: Conn, user: Viewer,
                 prefix: Annotated[str, Query(min_length=1, max_length=50, pattern=r"^[a-z0-9 _-]+$")],
                 limit: Annotated[int, Query(ge=1, le=50)] = 10) -> list[dict]:
    """Autocomplete: tags whose name, or any word of it, starts with ``prefix``; most used first."""
    return request.app.state.tag_counts.get(conn, prefix=prefix, order="popular", limit=limit)


@router.get("/images/{image_key}/tags", tags=["tags"])
def image_tags(conn: Conn, user: Viewer, image_key: ImageKey) -> dict:
    """What the image carries now (``tags``), every stored row behind it (``rows``: source ai/user/vlm,
    confidence, model version, threshold) and its pending review items."""
    found = queries.image_tags(conn, image_key)
    if found is None:
        raise HTTPException(404, f"no image {image_key}")
    return found


class TagEdit(BaseModel):
    model_config = ConfigDict(strict=True)  # JSON types as the schema says: no "5" for 5

    name: TagName
    note: Annotated[str | None, Field(max_length=500)] = None


class Outcome(BaseModel):
    image_key: str
    status: str
    review_id: int | None
    decisions: dict[str, bool]
    feedback_ids: list[int]
    superseded: int


def _outcome(result: review.ReviewOutcome) -> Outcome:
    return Outcome(image_key=result.image_key, status=result.status, review_id=result.review_id,
                   decisions=result.decisions, feedback_ids=result.feedback_ids, superseded=result.superseded)


@router.post("/images/{image_key}/tags", tags=["tags"], status_code=201)
def add_image_tag(conn: Conn, user: Reviewer, image_key: ImageKey, body: TagEdit) -> Outcome:
    """Put a tag on an image (reviewers). A name the taxonomy does not list creates a ``custom`` tag if it
    is 2–50 lowercase letters, digits, spaces or hyphens and passes the refusal policy."""
    return _outcome(review.add_tag(driver(conn), image_key, body.name, user.username, note=body.note))


@router.delete("/images/{image_key}/tags/{name}", tags=["tags"])
def remove_image_tag(conn: Conn, user: Reviewer, image_key: ImageKey,
                     name: Annotated[str, Path(min_length=2, max_length=50)]) -> Outcome:
    """Say a tag does not apply to an image (reviewers): recorded as a negative label, never deleted."""
    return _outcome(review.remove_tag(driver(conn), image_key, name, user.username))


class Flag(BaseModel):
    model_config = ConfigDict(strict=True)

    reason: Annotated[str, Field(min_length=1, max_length=500, pattern=NOT_BLANK, description="not only spaces")]


@router.post("/images/{image_key}/flag", tags=["review"], status_code=201)
def flag_image(conn: Conn, user: Reviewer, image_key: ImageKey, body: Flag) -> dict:
    """Ask for the image to be analysed again (one open flag per image)."""
    if not body.reason.strip():
        raise HTTPException(422, "say why the image needs another look")
    return {"flag_id": review.flag_image(driver(conn), image_key, body.reason, user.username)}


# ---- review queue ---------------------------------------------------------------------------
@router.get("/review", tags=["review"])
def review_queue(conn: Conn, user: Viewer, limit: Limit = queries.PAGE_SIZE,
                 model_version: Annotated[str | None, Query(max_length=200)] = None) -> list[dict]:
    """Pending items, oldest first: low-confidence tags and exclusive-category conflicts."""
    return [item.__dict__ for item in review.pending_reviews(driver(conn), model_version=model_version, limit=limit)]


class Decision(BaseModel):
    # `correct` names the tag that applies instead: said in the schema, and checked before the handler.
    model_config = ConfigDict(strict=True, json_schema_extra={"anyOf": [
        {"properties": {"action": {"enum": ["accept", "reject"]}}},
        {"properties": {"tag": {"type": "string"}}, "required": ["tag"]},
    ]})

    action: Literal["accept", "reject", "correct"]
    tag: TagName | None = Field(default=None, description="for `correct`: the tag that applies instead")
    note: Annotated[str | None, Field(max_length=500)] = None

    @model_validator(mode="after")
    def _correct_names_a_tag(self):
        if self.action == "correct" and self.tag is None:
            raise ValueError("a correction names the tag that applies instead")
        return self


@router.post("/review/{review_id}", tags=["review"])
def decide(conn: Conn, user: Reviewer, review_id: Annotated[int, Path(ge=1, le=2**62)], body: Decision) -> Outcome:
    """Accept, reject or correct a queued tag (reviewers); writes feedback for calibration."""
    pg = driver(conn)
    if body.action == "correct":
        if body.tag is None:
            raise HTTPException(422, "a correction names the tag that applies instead")
        return _outcome(review.correct(pg, review_id, user.username, body.tag, note=body.note))
    act = review.accept if body.action == "accept" else review.reject
    return _outcome(act(pg, review_id, user.username, note=body.note))


# ---- creators -------------------------------------------------------------------------------
@router.get("/creators", tags=["creators"])
def creators(
    conn: Conn,
    user: Viewer,
    min_followers: Annotated[int | None, Query(ge=0, le=2**62)] = None,
    max_followers: Annotated[int | None, Query(ge=0, le=2**62)] = None,
    is_business: bool | None = None,
    is_verified: bool | None = None,
    has_duplicates: bool | None = None,
    country: Annotated[str | None, Query(max_length=64)] = None,
    category: Annotated[str | None, Query(max_length=100)] = None,
    tags_all: Annotated[list[str], Query(max_length=20, description="creator carries ALL of these")] = [],  # noqa: B006
    tags_any: Annotated[list[str], Query(max_length=20, description="creator carries ANY of these")] = [],  # noqa: B006
    topics: Annotated[list[str], Query(max_length=20, description="LLM content topics, any of them")] = [],  # noqa: B006
    min_share: Annotated[float, Query(ge=0, le=1)] = 0.0,
    limit: Limit = queries.PAGE_SIZE,
    offset: Offset = 0,
) -> list[dict]:
    """Creators, most followed first. A creator carries a tag when at least ``min_share`` of its
    analysed images do (zero-shot creator tags of the newest model)."""
    flt = queries.CreatorFilter(
        min_followers=min_followers, max_followers=max_followers, is_business=is_business,
        is_verified=is_verified, has_duplicates=has_duplicates, country=country, category=category,
        tags_all=tags_all, tags_any=tags_any, topics=topics, min_share=min_share,
    )
    return queries.list_creators(conn, flt, limit, offset)


@router.get("/creators/{username}/tag-history", tags=["creators"])  # before /creators/{platform}/{username}
def creator_tag_history(conn: Conn, user: Viewer, username: Username,
                        platform: Annotated[str, Query(max_length=32)] = "instagram") -> dict:
    """Per tag, the creator's share of images and mean confidence per analysis (model version, month), and
    the changes between two analyses beyond CREATORLENS_TAG_HISTORY_CHANGE, listed for review."""
    if not queries.creator_exists(conn, platform, username):
        raise HTTPException(404, f"no creator {platform}/{username}")
    return tag_history(driver(conn), platform, username)


@router.get("/creators/{platform}/{username}", tags=["creators"])
def creator(conn: Conn, user: Viewer, platform: Platform, username: Username) -> dict:
    """Profile, LLM-written profile, creator tags (share of images, mean confidence) and images."""
    found = queries.get_creator(conn, platform, username)
    if found is None:
        raise HTTPException(404, f"no creator {platform}/{username}")
    return found


@router.get("/creators/{platform}/{username}/similar", tags=["creators"])
def similar_creators(request: Request, conn: Conn, user: Viewer, platform: Platform, username: Username,
                     by: Literal["profile", "images"] = "profile",
                     limit: Annotated[int, Query(ge=1, le=50)] = 10) -> list[dict]:
    """``profile``: nearest text embeddings of persona + bio. ``images``: the creators whose images lie
    nearest to this creator's mean image embedding (newest model), best match first."""
    if not queries.creator_exists(conn, platform, username):
        raise HTTPException(404, f"no creator {platform}/{username}")
    if by == "profile":
        return queries.similar_by_profile(conn, platform, username, limit)
    search = request.app.state.search
    model = search.model(conn=conn)  # on the request's connection: never hold one and wait for another
    if model is None:
        raise HTTPException(503, "no image embeddings yet (run the embedding stage with weights)")
    mean = queries.creator_mean_embedding(conn, platform, username, *model)
    if mean is None:
        return []
    hits, _ = search.nearest(mean, SearchFilters(), model[0], model[1], limit=200, conn=conn)
    return queries.creators_of_images(conn, hits, (platform, username), limit)


class Brief(BaseModel):
    # At least one tag, required or preferred: said in the schema, and checked before the handler.
    model_config = ConfigDict(strict=True, json_schema_extra={"anyOf": [
        {"properties": {"required": {"minItems": 1}}, "required": ["required"]},
        {"properties": {"preferred": {"minItems": 1}}, "required": ["preferred"]},
    ]})

    required: Annotated[list[TagName], Field(max_length=20)] = []
    preferred: Annotated[list[TagName], Field(max_length=20)] = []
    min_share: Annotated[float, Field(ge=0, le=1)] = 0.1
    limit: Annotated[int, Field(ge=1, le=200)] = 20

    @model_validator(mode="after")
    def _names_a_tag(self):
        if not self.required and not self.preferred:
            raise ValueError("a brief names at least one required or preferred tag")
        return self


@router.post("/creators/match", tags=["creators"])
def match_brief(conn: Conn, user: Viewer, brief: Brief) -> list[dict]:
    """Match a campaign brief: creators carrying every required tag (share ≥ ``min_share``), ranked by
    preferred tags matched, then by summed share. Reads only."""
    if not brief.required and not brief.preferred:
        raise HTTPException(422, "a brief names at least one required or preferred tag")
    return queries.match_brief(conn, brief.required, brief.preferred, brief.min_share, brief.limit)


# ---- images and search ----------------------------------------------------------------------
@router.get("/images/{image_key}", tags=["images"])
def image(conn: Conn, user: Viewer, image_key: ImageKey) -> dict:
    found = queries.get_image(conn, image_key)
    if found is None:
        raise HTTPException(404, f"no image {image_key}")
    return found


def _filters(category: str | None, tag: str | None, date_from: datetime | None, date_to: datetime | None,
             hide_duplicates: bool) -> SearchFilters:
    return SearchFilters(category=category, tag=tag, date_from=date_from, date_to=date_to,
                         hide_duplicates=hide_duplicates)


@router.get("/search", tags=["search"])
def search(
    request: Request,
    user: Viewer,
    q: Annotated[str, Query(min_length=1, max_length=200, pattern=NOT_BLANK, description="words (not only spaces)")],
    mode: Annotated[str, Query(pattern="^(" + "|".join(MODES) + ")$")] = "hybrid",
    category: Annotated[str | None, Query(max_length=100)] = None,
    tag: TagQuery = None,
    date_from: datetime | None = None,
    date_to: datetime | None = None,
    hide_duplicates: bool = False,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> dict:
    """Hybrid search: keyword (OCR, tags, bios, captions, LLM profiles) and semantic (the query text
    embedded by the image model, nearest images by HNSW), fused by reciprocal rank fusion (k=60)."""
    flt = _filters(category, tag, date_from, date_to, hide_duplicates)
    return request.app.state.search.search(q, mode=mode, filters=flt, limit=limit).as_dict()


@router.get("/search/similar/{image_key}", tags=["search"])
def similar_images(
    request: Request, user: Viewer, image_key: ImageKey,
    category: Annotated[str | None, Query(max_length=100)] = None,
    tag: TagQuery = None,
    hide_duplicates: bool = False,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> dict:
    """Image → image: the nearest images to a stored one (its own vector; no model needed)."""
    flt = _filters(category, tag, None, None, hide_duplicates)
    return request.app.state.search.similar(image_key=image_key, filters=flt, limit=limit).as_dict()


def decode_upload(data: bytes) -> np.ndarray:
    """An uploaded photo as an upright RGB array, decoded like the pipeline's images: the pixel cap
    (``ImageLimits.max_pixels``) is checked from the header before decoding, so a decompression bomb
    costs no memory; 413 for too many bytes or pixels, 422 for anything that is not a readable image."""
    if not data:
        raise HTTPException(422, "the upload is empty")
    if len(data) > UPLOAD_LIMITS.max_bytes:
        raise HTTPException(413, f"images up to {UPLOAD_LIMITS.max_bytes // (1024 * 1024)} MiB")
    try:
        image, _ = decode_image(data, limits=UPLOAD_LIMITS)
    except ImageError as exc:
        if exc.reason == "decompression_bomb":
            raise HTTPException(413, f"image too large: {exc.detail}") from exc
        raise HTTPException(422, f"not a readable image: {exc}") from exc
    with image:
        return np.asarray(image)


@router.post("/search/image", tags=["search"])
def search_by_upload(
    request: Request, user: Viewer, file: Annotated[UploadFile, File(description="a photo (JPEG, PNG, WebP…)",
                                                                  json_schema_extra={"minLength": 1})],
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> dict:
    """Image → image: upload a photo; it is embedded locally by the image model and never leaves the server."""
    array = decode_upload(file.file.read(MAX_UPLOAD + 1))
    return request.app.state.search.similar(image=array, limit=limit).as_dict()


@router.get("/stats", tags=["stats"])
def stats(conn: Conn, user: Viewer) -> dict:
    """Progress per stage and failures by reason."""
    return queries.stats(conn)
