"""Expired signed CDN URLs get their own reason, and only our own processing failures count against
the failure-rate ceiling of ``creator_images_quality`` (a real loopback server plays the CDN)."""

from __future__ import annotations

import io
import time

import pandas as pd
import pytest
from PIL import Image

from assets.common.promotion import IMAGE_COLUMNS
from assets.images.assets import creator_images_quality, failure_counts
from assets.images.config import IngestConfig
from assets.images.imaging import (
    PROCESSING_REASONS,
    REASON_SIDES,
    REASONS,
    SOURCE_REASONS,
    ImageError,
    ImageLimits,
    counts_against_health,
    fetch_bytes,
    fetch_bytes_retrying,
    signed_url_expired,
)
from tests.support.http import Route, serve_cdn

LIMITS = ImageLimits(timeout_s=2)
NOW = 1_714_560_000  # 2024-05-01
PAST = format(int(time.time()) - 86400, "X")  # upper-case hex, as Instagram writes it
FUTURE = format(int(time.time()) + 86400, "X")


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 24), (10, 200, 10)).save(buf, "JPEG")
    return buf.getvalue()


# --------------------------------------------------------------------------- oe= parsing


@pytest.mark.parametrize(
    ("url", "expired"),
    [
        (f"https://scontent.cdninstagram.com/v/a.jpg?stp=dst-jpg&oh=00_Af&oe={NOW - 1:x}", True),
        (f"https://scontent.cdninstagram.com/v/a.jpg?oe={NOW - 1:X}&_nc_sid=8b3546", True),
        (f"https://scontent.cdninstagram.com/v/a.jpg?oe={NOW + 60:x}", False),
        ("https://scontent.cdninstagram.com/v/a.jpg", False),  # unsigned
        ("https://scontent.cdninstagram.com/v/a.jpg?oe=zzzz", False),  # not hex: not presumed expired
        ("https://scontent.cdninstagram.com/v/a.jpg?noe=1", False),
        ("/local/path.jpg", False),
    ],
)
def test_signed_url_expired(url: str, expired: bool) -> None:
    assert signed_url_expired(url, now=NOW) is expired


# --------------------------------------------------------------------------- HTTP answers


@pytest.fixture
def cdn():
    with serve_cdn() as cdn:
        yield cdn


@pytest.mark.parametrize(
    ("status", "body", "query", "reason"),
    [
        (403, b"URL signature expired", f"oe={PAST}", "url_expired"),  # Instagram's answer
        (403, b"<html>Forbidden</html>", f"oe={PAST}", "url_expired"),  # the past oe= alone says so
        (410, b"Gone", f"oe={PAST}", "url_expired"),
        (403, b"Bad request: URL signature expired", "", "url_expired"),  # the body alone says so
        (403, b"URL signature mismatch", f"oe={FUTURE}", "http_error"),  # tampered, not expired
        (403, b"<html>Forbidden</html>", "", "http_error"),
        (404, b"not found", f"oe={PAST}", "http_error"),  # 404 stays what it was
        (500, b"URL signature expired", f"oe={PAST}", "http_error"),  # only 403/410 mean expiry
    ],
)
def test_expired_signed_url_is_its_own_reason(cdn, status, body, query, reason) -> None:
    cdn.routes[f"/v/a.jpg?{query}" if query else "/v/a.jpg"] = Route(status, body, "text/plain")
    url = cdn.url(f"v/a.jpg?{query}" if query else "v/a.jpg")
    with pytest.raises(ImageError) as info:
        fetch_bytes(url, limits=LIMITS)
    assert info.value.reason == reason
    assert info.value.status_code == status
    assert f"HTTP {status}" in info.value.detail and url in info.value.detail


def test_expired_url_is_not_retried_and_a_fresh_one_is_fetched(cdn) -> None:
    cdn.routes[f"/v/a.jpg?oe={PAST}"] = Route(403, b"URL signature expired", "text/plain")
    cdn.routes[f"/v/a.jpg?oe={FUTURE}"] = Route(200, _jpeg())
    with pytest.raises(ImageError) as info:
        fetch_bytes_retrying(cdn.url(f"v/a.jpg?oe={PAST}"), limits=LIMITS, attempts=3, backoff_s=0.01)
    assert info.value.reason == "url_expired" and not info.value.transient
    assert cdn.hits.count(f"/v/a.jpg?oe={PAST}") == 1
    assert fetch_bytes(cdn.url(f"v/a.jpg?oe={FUTURE}"), limits=LIMITS) == _jpeg()


def test_a_large_error_body_is_not_read_whole(cdn) -> None:
    cdn.routes["/big"] = Route(403, b"x" * 5_000_000 + b"URL signature expired", "text/plain")
    started = time.perf_counter()
    with pytest.raises(ImageError) as info:
        fetch_bytes(cdn.url("big"), limits=LIMITS)
    assert info.value.reason == "http_error"  # the phrase lies beyond the first 4 KB looked at
    assert time.perf_counter() - started < 2


# --------------------------------------------------------------------------- classification


def test_every_reason_has_exactly_one_side() -> None:
    assert set(REASON_SIDES.values()) == {"source", "processing"}
    assert SOURCE_REASONS | PROCESSING_REASONS == REASONS and not SOURCE_REASONS & PROCESSING_REASONS
    assert {"url_expired", "not_found", "network_error", "timeout", "http_error", "bad_content_type",
            "no_media_url"} == SOURCE_REASONS
    assert {"truncated", "not_an_image", "decompression_bomb", "unsupported_format", "empty_file",
            "too_large", "internal_error"} == PROCESSING_REASONS
    assert not counts_against_health("url_expired") and counts_against_health("truncated")
    assert counts_against_health("some_new_reason")  # unclassified failures are not presumed harmless
    for reason in REASONS:
        assert ImageError(reason).reason == reason  # every classified reason can be raised


def _frame(*rows: dict) -> pd.DataFrame:
    base = {"platform": "instagram", "username": "u", "rank": 1, "engagement": 1, "source_uri": "x"}
    df = pd.DataFrame([{**base, "image_key": f"instagram:{i}", "post_id": str(i), **r} for i, r in enumerate(rows)],
                      columns=list(IMAGE_COLUMNS))
    for col in ("byte_size", "width", "height", "frames", "pdq_quality"):
        df[col] = df[col].astype("Int64")
    df["exif_rotated"] = df["exif_rotated"].astype("boolean")
    return df


OK = {"status": "ok", "sha256": "a" * 64, "pdq_hash": "b" * 64, "pdq_quality": 90}


def _failed(reason: str) -> dict:
    return {"status": "failed", "error_reason": reason, "error": f"{reason}: detail"}


def _check(df: pd.DataFrame, ceiling: float = 0.2):
    result = creator_images_quality(creator_images=df, ingest=IngestConfig(max_failure_rate=ceiling))
    return result, {k: getattr(v, "value", v) for k, v in result.metadata.items()}


def test_every_image_unreachable_still_passes_the_ceiling() -> None:
    df = _frame(*[_failed(r) for r in ("url_expired",) * 6 + ("not_found", "network_error", "timeout",
                                                                "http_error", "bad_content_type", "no_media_url")])
    result, meta = _check(df, ceiling=0.0)
    assert result.passed, result.description
    assert (meta["source_failures"], meta["processing_failures"], meta["failure_rate"]) == (12, 0, 0.0)
    assert meta["source_failures_by_reason"]["url_expired"] == 6 and meta["processing_failures_by_reason"] == {}


def test_processing_failures_are_measured_against_the_images_we_processed() -> None:
    # 3 ok, 1 truncated, 20 expired: 1 of the 4 images we had bytes for failed (25 % > 20 %).
    df = _frame(*[OK] * 3, _failed("truncated"), *[_failed("url_expired")] * 20)
    result, meta = _check(df)
    assert not result.passed and "health_status" in result.description
    assert (meta["processing_failures"], meta["source_failures"], meta["processed_images"]) == (1, 20, 4)
    assert meta["failure_rate"] == 0.25 and meta["max_failure_rate"] == 0.2
    assert meta["processing_failures_by_reason"] == {"truncated": 1}
    # 9 ok and 1 truncated (10 %): passes, however many URLs expired.
    result, meta = _check(_frame(*[OK] * 9, _failed("truncated"), *[_failed("url_expired")] * 50))
    assert result.passed and meta["failure_rate"] == 0.1


def test_failure_counts_of_an_empty_frame() -> None:
    assert failure_counts(_frame()) == {"processing_failures": 0, "source_failures": 0, "processed": 0,
                                        "failure_rate": 0.0}
    assert _check(_frame())[0].passed
