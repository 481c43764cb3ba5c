"""Server-rendered pages (Jinja2). Forms post with a CSRF token; JavaScript stays small (static/app.js:
keyboard shortcuts for the review queue). Every write goes through the same assets.tagging.review
functions as the JSON API; a refused action comes back to the page as a message, not a JSON error."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

from app import auth, queries, uploads
from app.api import MAX_UPLOAD, decode_upload
from app.deps import Conn, Reviewer, Viewer, driver, request_conn
from app.search import MODES, SearchFilters, SearchUnavailable, UnknownTag
from assets.tagging import queue_order, review
from assets.tagging.history import tag_history
from resources.blobs import LocalBlobs

router = APIRouter(include_in_schema=False)


def render(request: Request, template: str, user: auth.User | None, **context) -> HTMLResponse:
    return request.app.state.templates.TemplateResponse(
        request, template, {"user": user, "csrf": user.csrf_token if user else "", **context}
    )


def _safe_next(target: str | None) -> str:
    return target if target and target.startswith("/") and not target.startswith("//") else "/"


def _login_form(request: Request, next: str, error: str | None, status: int = 200) -> HTMLResponse:
    """The login page with a CSRF token bound to the pre-session cookie (set here when absent)."""
    nonce = request.cookies.get(auth.LOGIN_COOKIE) or auth.new_login_nonce()
    response = render(request, "login.html", None, next=_safe_next(next), error=error,
                      csrf=auth.login_csrf_for(nonce))
    response.status_code = status
    if request.cookies.get(auth.LOGIN_COOKIE) != nonce:
        response.set_cookie(auth.LOGIN_COOKIE, nonce, httponly=True, samesite="lax",
                            secure=request.app.state.secure_cookies)
    return response


@router.get("/login")
def login_page(request: Request, next: str | None = None) -> HTMLResponse:
    return _login_form(request, next, None)


@router.post("/login")
def login_submit(
    request: Request,
    conn: Conn,
    username: Annotated[str, Form(max_length=40)],
    password: Annotated[str, Form(max_length=200)],
    next: Annotated[str, Form(max_length=500)] = "/",
    csrf_token: Annotated[str, Form(max_length=100)] = "",
):
    # Login CSRF: the form's token must match this browser's pre-session cookie (a cross-site form
    # cannot know it). Checked first: a forged post costs no scrypt run and no throttle hit.
    if not auth.login_csrf_ok(request.cookies.get(auth.LOGIN_COOKIE), csrf_token):
        return _login_form(request, next, "The login form expired or came from another site: log in again.", 403)
    limiter = request.app.state.login_limits
    client = request.client.host if request.client else "?"
    wait = limiter.refused(username, client)
    if wait:
        response = _login_form(request, next, f"Too many failed logins: try again in {wait} s.", 429)
        response.headers["Retry-After"] = str(wait)
        return response
    token = auth.login(conn, username, password)
    if token is None:
        limiter.failed(username, client)
        return _login_form(request, next, "Wrong username or password.", 401)
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(auth.SESSION_COOKIE, token, httponly=True, samesite="lax",
                        secure=request.app.state.secure_cookies, max_age=int(auth.SESSION_TTL.total_seconds()))
    return response


@router.post("/logout")
async def logout(request: Request, conn: Conn, user: Viewer):
    form = await request.form()
    if user.via == "session" and not auth.csrf_ok(user, form.get("csrf_token")):
        raise HTTPException(403, "missing or wrong CSRF token")
    auth.logout(conn, user.secret)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(auth.SESSION_COOKIE)
    return response


def _back(target: str, message: str | None = None, error: str | None = None) -> RedirectResponse:
    """303 back to a page of this app, carrying a one-line outcome for it to show."""
    target = _safe_next(target)
    extra = {k: v for k, v in (("msg", message), ("error", error)) if v}
    if extra:
        target += ("&" if "?" in target else "?") + urlencode(extra)
    return RedirectResponse(target, status_code=303)


def _act(target: str, action, done: str) -> RedirectResponse:
    """Run a review action; its refusal (already resolved, bad tag name, unknown tag) becomes a message."""
    try:
        action()
    except (review.ReviewError, ValueError) as exc:
        return _back(target, error=str(exc))
    return _back(target, message=done)


@router.get("/")
def home(request: Request, conn: Conn, user: Viewer, page: Annotated[int, Query(ge=1, le=100_000)] = 1) -> HTMLResponse:
    return render(request, "gallery.html", user, images=queries.list_images(conn, page), page=page)


@router.get("/creators")
def creators_page(request: Request, conn: Conn, user: Viewer,
                  tags_all: Annotated[str, Query(max_length=500)] = "",
                  tags_any: Annotated[str, Query(max_length=500)] = "",
                  topics: Annotated[str, Query(max_length=500)] = "") -> HTMLResponse:
    def words(value: str) -> list[str]:
        return [w.strip() for w in value.split(",") if w.strip()][:20]

    flt = queries.CreatorFilter(tags_all=words(tags_all), tags_any=words(tags_any), topics=words(topics))
    return render(request, "creators.html", user, creators=queries.list_creators(conn, flt),
                  form={"tags_all": tags_all, "tags_any": tags_any, "topics": topics})


@router.get("/creators/{platform}/{username}")
def creator_page(request: Request, conn: Conn, user: Viewer, platform: str, username: str,
                 msg: str | None = None, error: str | None = None) -> HTMLResponse:
    creator = queries.get_creator(conn, platform, username)
    if creator is None:
        raise HTTPException(404, "no such creator")
    return render(request, "creator.html", user, creator=creator,
                  similar=queries.similar_by_profile(conn, platform, username, 8),
                  history=tag_history(driver(conn), platform, username),
                  uploads=uploads.creator_uploads(conn, platform, username, 20), msg=msg, error=error)


@router.get("/images/{image_key}")
def image_page(request: Request, conn: Conn, user: Viewer, image_key: str,
               msg: str | None = None, error: str | None = None) -> HTMLResponse:
    image = queries.get_image(conn, image_key)
    if image is None:
        raise HTTPException(404, "no such image")
    return render(request, "image.html", user, image=image, tags=queries.image_tags(conn, image_key),
                  all_tags=queries.tag_names(conn), msg=msg, error=error)


@router.post("/images/{image_key}/tags")
def add_tag_form(conn: Conn, user: Reviewer, image_key: str, name: Annotated[str, Form(max_length=50)],
                 next: Annotated[str, Form(max_length=500)] = "") -> RedirectResponse:
    name = name.strip()
    return _act(next or f"/images/{image_key}",
                lambda: review.add_tag(driver(conn), image_key, name, user.username), f"added {name}")


@router.post("/images/{image_key}/tags/remove")
def remove_tag_form(conn: Conn, user: Reviewer, image_key: str, name: Annotated[str, Form(max_length=50)],
                    next: Annotated[str, Form(max_length=500)] = "") -> RedirectResponse:
    return _act(next or f"/images/{image_key}",
                lambda: review.remove_tag(driver(conn), image_key, name, user.username), f"removed {name}")


@router.post("/images/{image_key}/flag")
def flag_form(conn: Conn, user: Reviewer, image_key: str, reason: Annotated[str, Form(max_length=500)],
              next: Annotated[str, Form(max_length=500)] = "") -> RedirectResponse:
    return _act(next or f"/images/{image_key}",
                lambda: review.flag_image(driver(conn), image_key, reason, user.username),
                f"flagged {image_key} for re-analysis")


@router.get("/review")
def review_page(request: Request, conn: Conn, user: Viewer, msg: str | None = None,
                error: str | None = None) -> HTMLResponse:
    items = queue_order.rank_queue(driver(conn), limit=queries.PAGE_SIZE)  # most useful label first, with why
    return render(request, "review.html", user, items=items, all_tags=queries.tag_names(conn),
                  msg=msg, error=error)


@router.post("/review/{review_id}")
def review_form(conn: Conn, user: Reviewer, review_id: int,
                action: Annotated[str, Form(pattern="^(accept|reject|correct)$")],
                tag: Annotated[str, Form(max_length=50)] = "",
                next: Annotated[str, Form(max_length=500)] = "/review") -> RedirectResponse:
    pg = driver(conn)
    if action == "correct":
        tag = tag.strip()
        return _act(next, lambda: review.correct(pg, review_id, user.username, tag),
                    f"item {review_id}: corrected to {tag}")
    act = review.accept if action == "accept" else review.reject
    return _act(next, lambda: act(pg, review_id, user.username), f"item {review_id}: {action}ed")


def _search_form(q: str, mode: str, category: str, tag: str, date_from: str, date_to: str,
                 hide_duplicates: bool) -> tuple[dict, SearchFilters]:
    def day(value: str, end: bool = False) -> datetime | None:
        if not value:
            return None
        parsed = date.fromisoformat(value)
        return datetime.combine(parsed, time.max if end else time.min)

    form = {"q": q, "mode": mode, "category": category, "tag": tag, "date_from": date_from, "date_to": date_to,
            "hide_duplicates": hide_duplicates}
    return form, SearchFilters(category=category or None, tag=tag or None, date_from=day(date_from),
                               date_to=day(date_to, end=True), hide_duplicates=hide_duplicates)


@router.get("/search")
def search_page(
    request: Request, user: Viewer,
    q: Annotated[str, Query(max_length=200)] = "",
    mode: Annotated[str, Query(pattern="^(" + "|".join(MODES) + ")$")] = "hybrid",
    category: Annotated[str, Query(max_length=100)] = "",
    tag: Annotated[str, Query(max_length=50)] = "",
    date_from: Annotated[str, Query(max_length=10)] = "",
    date_to: Annotated[str, Query(max_length=10)] = "",
    hide_duplicates: bool = False,
    similar: Annotated[str, Query(max_length=200)] = "",
) -> HTMLResponse:
    search = request.app.state.search
    result, error = None, None
    try:
        form, flt = _search_form(q, mode, category, tag, date_from, date_to, hide_duplicates)
        if similar:
            result = search.similar(image_key=similar, filters=flt, limit=queries.PAGE_SIZE)
        elif q.strip():
            result = search.search(q, mode=mode, filters=flt, limit=queries.PAGE_SIZE)
    except (SearchUnavailable, UnknownTag, LookupError, ValueError) as exc:
        form = {"q": q, "mode": mode}
        error = str(exc)
    with request_conn(request) as conn:  # after the search, which takes its own connections
        all_tags = queries.tag_names(conn)
    return render(request, "search.html", user, form=form, result=result, error=error, modes=MODES,
                  similar=similar, all_tags=all_tags)


@router.post("/search/image")
def search_upload_page(request: Request, user: Viewer,
                       file: Annotated[UploadFile, File()]) -> HTMLResponse:
    result, error = None, None
    try:
        result = request.app.state.search.similar(image=decode_upload(file.file.read(MAX_UPLOAD + 1)),
                                                  limit=queries.PAGE_SIZE)
    except HTTPException as exc:
        error = str(exc.detail)
    except SearchUnavailable as exc:
        error = str(exc)
    with request_conn(request) as conn:
        all_tags = queries.tag_names(conn)
    return render(request, "search.html", user, form={"q": "", "mode": "semantic"}, result=result, error=error,
                  modes=MODES, similar="(uploaded photo)", all_tags=all_tags)


@router.get("/stats")
def stats_page(request: Request, conn: Conn, user: Viewer) -> HTMLResponse:
    return render(request, "stats.html", user, stats=queries.stats(conn))


@router.get("/blobs/{key:path}")
def blob(request: Request, user: Viewer, key: str) -> FileResponse:
    """Thumbnails, originals and crops from the content-addressed blob store (keys cannot escape it)."""
    try:
        path = LocalBlobs(request.app.state.blob_root).path(key)
        found = path.is_file()
    except (ValueError, OSError):  # outside the store, or a name the file system refuses (ENAMETOOLONG)
        raise HTTPException(404, "no such blob") from None
    if not found:
        raise HTTPException(404, "no such blob")
    return FileResponse(path, headers={"Cache-Control": "private, max-age=86400"})
