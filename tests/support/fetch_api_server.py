"""A real HTTP server on 127.0.0.1 speaking a TikHub-like posts/reels API, plus its image CDN.

``GET /api/v1/instagram/web_app/fetch_user_posts_and_reels_by_username?username=U[&pagination_token=T]``
and ``GET /api/v1/instagram/web_app/fetch_user_reels_by_username_v3?username=U[&max_id=M]`` answer what
``FakeFetchApi.pages[(endpoint, username, cursor)]`` holds (a list: one answer per request, the
last repeats; ``cursor`` is ``""`` for the first page). Without ``Authorization: Bearer <token>``
they answer 401 ``{"code": 401, "message": ...}``; an unknown page 404 ``{"detail": {...}}``.

Pages use the shapes the real APIs answer: the TikHub envelope around the private API's feed
(``{"code": 200, "data": {"items": [...], "user": {...}, "more_available", "pagination_token"}}``)
for posts, the bare private-API feed (``{"items": [...], "more_available", "next_max_id"}``) for
reels; items carry ``user`` (the owner), ``image_versions2``, ``carousel_media`` and, for reels,
``video_versions``.

``GET /cdn/<name>?...&oe=<hex>`` serves the image ``images[name]`` until ``expired`` is set; then,
like Instagram's CDN once a signature's time is past, 403 "URL signature expired".
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support.http import LoopbackHandler, serve_handler

POSTS_PATH = "/api/v1/instagram/web_app/fetch_user_posts_and_reels_by_username"
REELS_PATH = "/api/v1/instagram/web_app/fetch_user_reels_by_username_v3"
CURSOR = {POSTS_PATH: "pagination_token", REELS_PATH: "max_id"}
OE = format(int(time.time()) + 3 * 86400, "x")  # signed for three more days (until ``expired``)


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class FakeFetchApi:
    token: str = "test-token"
    base_url: str = ""
    pages: dict[tuple[str, str, str], list[Answer]] = field(default_factory=dict)
    images: dict[str, bytes] = field(default_factory=dict)
    expired: bool = False
    # (monotonic time, path with query, status answered), in order
    log: list[tuple[float, str, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def image_url(self, name: str) -> str:
        return f"{self.base_url}/cdn/{name}?stp=dst-jpg_e35&_nc_ht=scontent.cdninstagram.com&oh=00_Af{name[:4]}&oe={OE}"

    def add(self, endpoint: str, username: str, cursor: str, *answers: Answer) -> None:
        self.pages[(endpoint, username, cursor)] = list(answers)

    def hits(self, prefix: str) -> list[tuple[float, str, int]]:
        return [entry for entry in self.log if entry[1].startswith(prefix)]

    def answer_for(self, path: str, query: dict[str, list[str]], auth: str | None) -> Answer:
        if path.startswith("/cdn/"):
            name = path.removeprefix("/cdn/")
            if self.expired:
                return Answer(403, b"URL signature expired", "text/plain")
            if name in self.images:
                return Answer(200, self.images[name], "image/jpeg")
            return Answer(404, b"<html><title>Not Found</title></html>", "text/html")
        if path not in CURSOR:
            return Answer(404, b'{"detail": "Not Found"}')
        if auth != f"Bearer {self.token}":
            return Answer(401, json.dumps({"code": 401, "message": "Invalid or missing token"}).encode())
        username = query.get("username", [""])[0]
        cursor = query.get(CURSOR[path], [""])[0]
        with self.lock:
            queue = self.pages.get((path, username, cursor))
            if not queue:
                detail = {"code": 404, "message": f"no page for {username!r} at cursor {cursor!r}"}
                return Answer(404, json.dumps({"detail": detail}).encode())
            return queue.pop(0) if len(queue) > 1 else queue[0]


def owner(username: str, pk: int, followers: int = 1200) -> dict[str, Any]:
    """The ``user`` object the private API puts on every feed item (and TikHub on the page)."""
    return {"pk": str(pk), "id": str(pk), "username": username, "full_name": username.replace(".", " ").title(),
            "is_private": False, "is_verified": False, "follower_count": followers}


def feed_item(pk: int, user: dict[str, Any], image_urls: list[str], *, likes: int = 10, reel: bool = False,
              video_url: str | None = None) -> dict[str, Any]:
    """A private-API feed item: ``carousel_media`` for several images, a reel's cover + video."""
    def versions(url: str) -> dict[str, Any]:
        return {"candidates": [{"width": 1080, "height": 1350, "url": url}]}

    item: dict[str, Any] = {
        "id": f"{pk}_{user['pk']}", "pk": pk, "code": f"C{pk}", "taken_at": 1714560000 + pk % 100_000,
        "media_type": 2 if reel else (8 if len(image_urls) > 1 else 1), "like_count": likes,
        "comment_count": 2, "caption": {"text": f"post {pk}"}, "user": user,
        "image_versions2": versions(image_urls[0]),
    }
    if len(image_urls) > 1:
        item["carousel_media_count"] = len(image_urls)
        item["carousel_media"] = [{"id": f"{pk}{i}_{user['pk']}", "pk": int(f"{pk}{i}"), "media_type": 1,
                                   "image_versions2": versions(url)} for i, url in enumerate(image_urls, 1)]
    if reel:
        item.update({"product_type": "clips", "video_duration": 12.5, "play_count": 345,
                     "video_versions": [{"type": 101, "url": video_url or image_urls[0] + "&video=1"}]})
    return item


def posts_page(items: list[dict[str, Any]], user: dict[str, Any], token: str | None) -> Answer:
    """A TikHub envelope around one page of the private API's user feed."""
    body = {"code": 200, "router": POSTS_PATH, "message": "Request successful. This request will incur a charge.",
            "data": {"items": items, "num_results": len(items), "user": user,
                     "more_available": token is not None, "pagination_token": token}}
    return Answer(200, json.dumps(body).encode())


def reels_page(items: list[dict[str, Any]], next_max_id: str | None) -> Answer:
    """A bare private-API feed page (``items`` + ``next_max_id`` + ``more_available``)."""
    body = {"items": items, "num_results": len(items), "more_available": next_max_id is not None,
            "next_max_id": next_max_id, "status": "ok"}
    return Answer(200, json.dumps(body).encode())


@contextmanager
def serve_fetch_api(api: FakeFetchApi | None = None) -> Iterator[FakeFetchApi]:
    api = api or FakeFetchApi()

    class Handler(LoopbackHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server API
            url = urlsplit(self.path)
            answer = api.answer_for(url.path, parse_qs(url.query), self.headers.get("Authorization"))
            with api.lock:
                api.log.append((time.monotonic(), self.path, answer.status))
            self.answer(answer.status, answer.body, answer.content_type, answer.headers)

    with serve_handler(Handler) as base_url:
        api.base_url = base_url
        yield api
