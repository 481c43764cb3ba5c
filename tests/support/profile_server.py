"""A real HTTP server on 127.0.0.1 that behaves like Instagram's ``web_profile_info`` endpoint.

``GET /api/v1/users/web_profile_info/?username=NAME`` answers, per request, one behaviour:

* ``ok``           200 JSON profile (or an HTML "page not found" for an unknown user)
* ``html``         200 text/html where JSON was expected (a profile that does not exist)
* ``429``          429 with ``Retry-After``
* ``please_wait``  401 ``{"message": "Please wait a few minutes before you try again."}``
* ``slow``         the JSON profile after ``slow_s`` (longer than the client's timeout)
* ``drop``         the connection closed without an answer
* ``500``          a server error

A per-user ``script`` lists the behaviours of that user's successive requests (then ``ok``);
``faults`` draws random behaviours (seeded) for every request. Used by the tests and by
``bench/enrich_faults.py``.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support.http import LoopbackHandler, serve_handler

PATH = "/api/v1/users/web_profile_info/"
NOT_FOUND_HTML = b"<!DOCTYPE html><html><head><title>Page Not Found &bull; Instagram</title></head><body></body></html>"
PLEASE_WAIT_BODY = b'{"message": "Please wait a few minutes before you try again.", "require_login": true, "status": "fail"}'


def web_profile_info(username: str, *, category: str | None = "Artist", bio: str | None = "hello",
                     full_name: str | None = None, followers: int = 1234, business: bool = True,
                     verified: bool = False) -> dict[str, Any]:
    """The ``user`` object of a web_profile_info answer (the fields the client maps)."""
    return {
        "username": username,
        "full_name": full_name if full_name is not None else username.title(),
        "biography": bio,
        "category_name": category,
        "edge_followed_by": {"count": followers},
        "is_business_account": business,
        "is_verified": verified,
    }


@dataclass
class Faults:
    """Random behaviours per request, e.g. ``Faults({"429": 0.05, "slow": 0.02, "html": 0.01})``."""

    rates: dict[str, float]
    seed: int = 0
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def draw(self) -> str:
        roll = self.rng.random()
        for behaviour, rate in self.rates.items():
            if roll < rate:
                return behaviour
            roll -= rate
        return "ok"


@dataclass
class FakeProfileApi:
    base_url: str = ""
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    script: dict[str, list[str]] = field(default_factory=dict)
    faults: Faults | None = None
    retry_after: str | None = "1"
    slow_s: float = 1.0
    delay_s: float = 0.0  # every answer waits this long (keeps a run going long enough to kill it)
    hits: Counter = field(default_factory=Counter)  # requests per username
    served_ok: Counter = field(default_factory=Counter)  # 200 JSON profiles per username
    log: list[tuple[float, str, str]] = field(default_factory=list)  # (monotonic time, username, behaviour)
    headers: list[dict[str, str]] = field(default_factory=list)  # request headers, in order
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url_template(self) -> str:
        return f"{self.base_url}{PATH}?username={{username}}"

    def add(self, username: str, **fields: Any) -> None:
        self.profiles[username] = web_profile_info(username, **fields)

    def behaviour(self, username: str) -> str:
        with self.lock:
            self.hits[username] += 1
            queue = self.script.get(username)
            if queue:
                chosen = queue.pop(0)
            elif self.faults is not None:
                chosen = self.faults.draw()
            else:
                chosen = "ok"
            self.log.append((time.monotonic(), username, chosen))
            return chosen


@contextmanager
def serve_profiles(api: FakeProfileApi | None = None) -> Iterator[FakeProfileApi]:
    api = api or FakeProfileApi()

    class Handler(LoopbackHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server API
            url = urlsplit(self.path)
            username = parse_qs(url.query).get("username", [""])[0]
            if url.path != PATH or not username:
                self.answer(404, NOT_FOUND_HTML, "text/html")
                return
            api.headers.append(dict(self.headers))
            behaviour = api.behaviour(username)
            if api.delay_s:
                time.sleep(api.delay_s)
            if behaviour == "drop":
                self.close_connection = True
                return
            if behaviour == "429":
                headers = {"Retry-After": api.retry_after} if api.retry_after is not None else {}
                self.answer(429, b'{"message": "rate limited", "status": "fail"}', "application/json", headers)
            elif behaviour == "please_wait":
                self.answer(401, PLEASE_WAIT_BODY, "application/json")
            elif behaviour == "500":
                self.answer(500, b"<html>oops</html>", "text/html")
            elif behaviour == "html" or username not in api.profiles:
                self.answer(200, NOT_FOUND_HTML, "text/html; charset=utf-8")
            else:
                if behaviour == "slow":
                    time.sleep(api.slow_s)
                body = json.dumps({"data": {"user": api.profiles[username]}, "status": "ok"}).encode()
                with api.lock:
                    api.served_ok[username] += 1
                self.answer(200, body, "application/json; charset=utf-8")

    with serve_handler(Handler) as base_url:
        api.base_url = base_url
        yield api
