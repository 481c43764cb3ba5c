"""Transient HTTP errors are retried (honouring Retry-After, else jittered backoff); others are not.

A real HTTP server on 127.0.0.1 answers 429/503 for the first requests of a route.
"""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from PIL import Image

from assets.images.imaging import ImageError, ImageLimits, fetch_bytes_retrying
from resources.http import parse_retry_after
from tests.support.http import Route, serve_cdn

LIMITS = ImageLimits(timeout_s=2)


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 10, 10)).save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture
def cdn():
    with serve_cdn() as cdn:
        yield cdn


def _hits(cdn, path: str) -> int:
    return cdn.hits.count(path)


def test_rate_limited_then_ok_is_fetched(cdn):
    cdn.routes["/a.jpg"] = Route(200, _jpeg(), fail_first=2, fail_status=429, fail_headers={"Retry-After": "0"})
    with httpx.Client() as client:
        assert fetch_bytes_retrying(cdn.url("a.jpg"), limits=LIMITS, client=client) == _jpeg()
    assert _hits(cdn, "/a.jpg") == 3


def test_server_error_without_retry_after_backs_off_then_gives_up(cdn):
    cdn.routes["/b.jpg"] = Route(200, _jpeg(), fail_first=10, fail_status=503)
    started = time.perf_counter()
    with pytest.raises(ImageError) as info:
        fetch_bytes_retrying(cdn.url("b.jpg"), limits=LIMITS, attempts=3, backoff_s=0.05)
    assert info.value.reason == "http_error" and info.value.status_code == 503 and info.value.transient
    assert _hits(cdn, "/b.jpg") == 3
    assert time.perf_counter() - started < 2  # full jitter: at most 0.05 + 0.1 s of waiting


def test_permanent_errors_are_not_retried(cdn):
    cdn.routes["/page.jpg"] = Route(200, b"<html>login</html>", "text/html")
    for path, reason in (("/missing.jpg", "http_error"), ("/page.jpg", "bad_content_type")):
        with pytest.raises(ImageError) as info:
            fetch_bytes_retrying(cdn.url(path), limits=LIMITS)
        assert info.value.reason == reason and not info.value.transient
        assert _hits(cdn, path) == 1


def test_connection_refused_is_transient():
    with pytest.raises(ImageError) as info:
        fetch_bytes_retrying("http://127.0.0.1:9/x.jpg", limits=LIMITS, attempts=2, backoff_s=0.01)
    assert info.value.reason == "network_error" and info.value.transient


def test_retry_after_header_forms():
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 < parse_retry_after(later) <= 30
    assert parse_retry_after(format_datetime(datetime(2000, 1, 1, tzinfo=UTC), usegmt=True)) == 0.0
