"""Server-rendered pages (Jinja2). Forms post with a CSRF token; JavaScript stays small (static/review.js)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

from app import auth, queries
from app.main import Conn, Viewer
from resources.blobstore import BlobStore

router = APIRouter(include_in_schema=False)


def render(request: Request, template: str, user: auth.User | None, **context) -> HTMLResponse:
    return request.app.state.templates.TemplateResponse(
        request, template, {"user": user, "csrf": user.csrf_token if user else "", **context}
    )


def _safe_next(target: str | None) -> str:
    return target if target and target.startswith("/") and not target.startswith("//") else "/"


@router.get("/login")
def login_page(request: Request, next: str | None = None) -> HTMLResponse:
    return render(request, "login.html", None, next=_safe_next(next), error=None)


@router.post("/login")
def login_submit(
    request: Request,
    conn: Conn,
    username: Annotated[str, Form(max_length=40)],
    password: Annotated[str, Form(max_length=200)],
    next: Annotated[str, Form(max_length=500)] = "/",
):
    token = auth.login(conn, username, password)
    if token is None:
        response = render(request, "login.html", None, next=_safe_next(next), error="Wrong username or password.")
        response.status_code = 401
        return response
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


@router.get("/")
def home(request: Request, conn: Conn, user: Viewer, page: int = 1) -> HTMLResponse:
    return render(request, "gallery.html", user, images=queries.list_images(conn, page), page=max(page, 1))


@router.get("/creators")
def creators_page(request: Request, conn: Conn, user: Viewer) -> HTMLResponse:
    return render(request, "creators.html", user, creators=queries.list_creators(conn, queries.CreatorFilter()))


@router.get("/creators/{platform}/{username}")
def creator_page(request: Request, conn: Conn, user: Viewer, platform: str, username: str) -> HTMLResponse:
    creator = queries.get_creator(conn, platform, username)
    if creator is None:
        raise HTTPException(404, "no such creator")
    return render(request, "creator.html", user, creator=creator)


@router.get("/images/{image_key}")
def image_page(request: Request, conn: Conn, user: Viewer, image_key: str) -> HTMLResponse:
    image = queries.get_image(conn, image_key)
    if image is None:
        raise HTTPException(404, "no such image")
    return render(request, "image.html", user, image=image)


@router.get("/stats")
def stats_page(request: Request, conn: Conn, user: Viewer) -> HTMLResponse:
    return render(request, "stats.html", user, stats=queries.stats(conn))


@router.get("/blobs/{key:path}")
def blob(request: Request, user: Viewer, key: str) -> FileResponse:
    """Thumbnails, originals and crops from the content-addressed blob store (keys cannot escape it)."""
    try:
        path = BlobStore(root=str(request.app.state.blob_root)).path(key)
    except ValueError:
        raise HTTPException(404, "no such blob") from None
    if not path.is_file():
        raise HTTPException(404, "no such blob")
    return FileResponse(path, headers={"Cache-Control": "private, max-age=86400"})
