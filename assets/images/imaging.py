"""Load, decode, normalise and hash a single image (no Dagster, no database).

Every failure is raised as :class:`ImageError` carrying a short, stable ``reason``
code so callers can record it instead of crashing a pipeline run.
"""

from __future__ import annotations

import hashlib
import io
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse
from urllib.request import url2pathname

import httpx
import numpy as np
import pdqhash
import tenacity
from PIL import Image, ImageOps, UnidentifiedImageError
from pillow_heif import register_heif_opener

from gpu_ops.compat import restore_pil_open
from resources.http import retry_after_seconds, wait_retry_after

register_heif_opener()

__all__ = [
    "PROCESSING_REASONS",
    "REASONS",
    "REASON_SIDES",
    "SOURCE_REASONS",
    "ImageError",
    "ImageLimits",
    "ProcessedImage",
    "counts_against_health",
    "decode_image",
    "fetch_bytes",
    "fetch_bytes_retrying",
    "pdq",
    "pdq_dihedral",
    "process_image_bytes",
    "process_uri",
    "signed_url_expired",
]

#: Every reason an image can fail with, and whose failure it is. ``"source"``: the image could not be
#: had — unreachable, expired, missing or refused by the server — which says nothing about our
#: pipeline; such images are recorded (``failed`` rows with their reason) but never count against the
#: failure-rate ceiling, so they cannot hold a batch's creators and posts hostage. ``"processing"``: we
#: had the bytes (or applied our own limits to them) and could not turn them into an image — these
#: measure the pipeline's health, and the ceiling of ``creator_images_quality`` counts only them.
REASON_SIDES: dict[str, str] = {
    # source side: not our failure
    "url_expired": "source",  # 403/410 on a signed URL whose oe= time is past, or "signature expired"
    "not_found": "source",  # missing local file, unsupported/remote URI scheme
    "network_error": "source",  # connection refused/reset, DNS, too many redirects, invalid URL
    "timeout": "source",  # the server did not answer (or finish the body) in time
    "http_error": "source",  # any other non-2xx answer (404, 403 unsigned, 429, 5xx ...)
    "bad_content_type": "source",  # the server answered a non-image (an HTML login wall, a JSON error)
    "no_media_url": "source",  # the post names no image at all
    # processing side: the bytes we got, our decoding, our limits
    "empty_file": "processing",
    "too_large": "processing",  # over our max_image_bytes, like decompression_bomb over max_image_pixels
    "not_an_image": "processing",
    "truncated": "processing",
    "decompression_bomb": "processing",
    "unsupported_format": "processing",
    "internal_error": "processing",  # a bug or environment failure while handling one image
}
REASONS: frozenset[str] = frozenset(REASON_SIDES)
SOURCE_REASONS: frozenset[str] = frozenset(r for r, side in REASON_SIDES.items() if side == "source")
PROCESSING_REASONS: frozenset[str] = frozenset(r for r, side in REASON_SIDES.items() if side == "processing")


def counts_against_health(reason: str | None) -> bool:
    """Whether a failure with ``reason`` is one of our own processing (counted by the failure-rate
    ceiling). Unknown reasons count: a failure nobody classified is not presumed harmless."""
    return reason not in SOURCE_REASONS


_OCTET_STREAM_TYPES = ("application/octet-stream", "binary/octet-stream")
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
_ORIENTATION_TAG = 0x0112
_CHUNK_BYTES = 64 * 1024
_TRANSIENT_STATUS = frozenset({429, 502, 503, 504})
_EXPIRY_STATUS = frozenset({403, 410})
_EXPIRED_BODY = re.compile(rb"signature\s+(?:has\s+)?expired|url\s+(?:has\s+)?expired|expired\s+(?:url|signature)", re.IGNORECASE)
_ERROR_BODY_BYTES = 4096  # how much of an error answer is read to look for "signature expired"


@dataclass(frozen=True)
class ImageLimits:
    """Safety limits applied while fetching and decoding one image."""

    max_bytes: int = 25 * 1024 * 1024
    max_pixels: int = 60_000_000
    timeout_s: float = 20.0
    thumbnail_px: int = 400
    allowed_content_types: tuple[str, ...] = ("image/",)


class ImageError(Exception):
    """An image could not be fetched or decoded; ``reason`` is a stable code."""

    def __init__(
        self, reason: str, detail: str = "", *, status_code: int | None = None, retry_after: float | None = None
    ) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown image error reason {reason!r}")
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail
        self.status_code = status_code  # HTTP errors only
        self.retry_after = retry_after  # seconds, from a Retry-After header

    @property
    def transient(self) -> bool:
        """Worth another try: the connection failed, or the server said "later" (429, 502-504)."""
        if self.reason == "network_error":
            return True
        return self.reason == "http_error" and self.status_code in _TRANSIENT_STATUS

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}"


@dataclass(frozen=True)
class ProcessedImage:
    """Normalised facts about one decoded image."""

    sha256: str
    width: int
    height: int
    source_format: str
    source_mode: str
    frames: int
    exif_rotated: bool
    pdq_hash: str
    pdq_quality: int
    thumbnail_jpeg: bytes
    # The hashes of the image's 7 other dihedral transforms (rotations, flips), in
    # ``pdq.DIHEDRAL_TRANSFORMS`` order: a mirrored or rotated repost matches one of them.
    pdq_dihedral: tuple[str, ...] = ()


# --------------------------------------------------------------------------- fetching


def fetch_bytes(
    uri: str, *, limits: ImageLimits = ImageLimits(), client: httpx.Client | None = None
) -> bytes:
    """Return the raw bytes behind a local path, ``file://`` URI or http(s) URL."""
    scheme = urlparse(uri).scheme.lower()
    if scheme in ("http", "https"):
        return _fetch_http(uri, limits, client)
    if scheme == "file":
        parsed = urlparse(uri)
        if parsed.netloc not in ("", "localhost"):
            raise ImageError("not_found", f"remote file URI not supported: {uri}")
        return _read_local(Path(url2pathname(unquote(parsed.path))), limits)
    if scheme == "" or len(scheme) == 1:  # plain path (a 1-letter scheme is a drive)
        return _read_local(Path(uri), limits)
    raise ImageError("not_found", f"unsupported URI scheme {scheme!r}: {uri}")


def fetch_bytes_retrying(
    uri: str,
    *,
    limits: ImageLimits = ImageLimits(),
    client: httpx.Client | None = None,
    attempts: int = 3,
    backoff_s: float = 0.5,
    max_wait_s: float = 30.0,
) -> bytes:
    """:func:`fetch_bytes`, tried again on transient errors (connection failures, 429, 502-504).

    Waits honour the server's ``Retry-After`` (capped at ``max_wait_s``); otherwise exponential
    backoff with full jitter, so many threads hitting one rate limit do not retry in lockstep.
    A timeout is not retried: it already cost ``limits.timeout_s``. The last error is raised.
    """
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(lambda exc: isinstance(exc, ImageError) and exc.transient),
        stop=tenacity.stop_after_attempt(attempts),
        wait=wait_retry_after(tenacity.wait_random_exponential(multiplier=backoff_s), max_wait=max_wait_s),
        reraise=True,
    )
    return retrying(fetch_bytes, uri, limits=limits, client=client)


def _read_local(path: Path, limits: ImageLimits) -> bytes:
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise ImageError("not_found", f"not a regular file: {path}")
        if size > limits.max_bytes:
            raise ImageError("too_large", f"{size} bytes > limit {limits.max_bytes} for {path}")
        with path.open("rb") as fh:
            data = fh.read(limits.max_bytes + 1)
    except FileNotFoundError as exc:
        raise ImageError("not_found", f"no such file: {path}") from exc
    except OSError as exc:  # permission denied, I/O error, ...
        raise ImageError("not_found", f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(data) > limits.max_bytes:
        raise ImageError("too_large", f"more than {limits.max_bytes} bytes in {path}")
    if not data:
        raise ImageError("empty_file", f"0 bytes in {path}")
    return data


def _content_type_ok(content_type: str, limits: ImageLimits) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    if not media_type or media_type in _OCTET_STREAM_TYPES:
        return True
    return any(media_type.startswith(prefix) for prefix in limits.allowed_content_types)


def _fetch_http(uri: str, limits: ImageLimits, client: httpx.Client | None) -> bytes:
    owned = client is None
    http = client or httpx.Client(timeout=limits.timeout_s, follow_redirects=True)
    deadline = time.monotonic() + limits.timeout_s
    try:
        with http.stream(
            "GET", uri, timeout=limits.timeout_s, follow_redirects=True
        ) as response:
            return _read_response(uri, response, limits, deadline)
    except httpx.TimeoutException as exc:
        raise ImageError("timeout", f"timed out after {limits.timeout_s}s for {uri}") from exc
    except httpx.RequestError as exc:  # transport errors, too many redirects, decoding
        raise ImageError("network_error", f"{type(exc).__name__}: {exc} for {uri}") from exc
    except httpx.InvalidURL as exc:
        raise ImageError("network_error", f"invalid URL {uri}: {exc}") from exc
    finally:
        if owned:
            http.close()


def _read_response(
    uri: str, response: httpx.Response, limits: ImageLimits, deadline: float
) -> bytes:
    if not response.is_success:
        if response.status_code in _EXPIRY_STATUS and (signed_url_expired(uri) or _says_expired(response)):
            raise ImageError(
                "url_expired",
                f"HTTP {response.status_code} for an expired signed URL {uri}",
                status_code=response.status_code,
            )
        raise ImageError(
            "http_error",
            f"HTTP {response.status_code} for {uri}",
            status_code=response.status_code,
            retry_after=retry_after_seconds(response),
        )
    content_type = response.headers.get("content-type", "")
    if not _content_type_ok(content_type, limits):
        raise ImageError("bad_content_type", f"Content-Type {content_type!r} for {uri}")
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limits.max_bytes:
        raise ImageError(
            "too_large", f"Content-Length {declared} > limit {limits.max_bytes} for {uri}"
        )
    buf = bytearray()
    for chunk in response.iter_bytes(_CHUNK_BYTES):
        buf.extend(chunk)
        if len(buf) > limits.max_bytes:
            raise ImageError("too_large", f"body exceeds {limits.max_bytes} bytes for {uri}")
        if time.monotonic() > deadline:
            raise ImageError("timeout", f"body not complete after {limits.timeout_s}s for {uri}")
    if not buf:
        raise ImageError("empty_file", f"empty body for {uri}")
    return bytes(buf)


def signed_url_expired(uri: str, *, now: float | None = None) -> bool:
    """True when ``uri`` carries a CDN signature expiry (Instagram/Facebook ``oe=<hex unix time>``)
    that is in the past. A URL without one, or with one that does not parse, is not expired."""
    values = parse_qs(urlparse(uri).query).get("oe", [])
    if not values:
        return False
    try:
        expires = int(values[0], 16)
    except ValueError:
        return False
    return expires < (time.time() if now is None else now)


def _says_expired(response: httpx.Response) -> bool:
    """Whether the first few KB of an error answer say the URL's signature expired."""
    head = bytearray()
    try:
        for chunk in response.iter_bytes(_CHUNK_BYTES):
            head.extend(chunk)
            if len(head) >= _ERROR_BODY_BYTES:
                break
    except httpx.HTTPError:
        return False
    return bool(_EXPIRED_BODY.search(bytes(head[:_ERROR_BODY_BYTES])))


# --------------------------------------------------------------------------- decoding


def decode_image(
    data: bytes, *, limits: ImageLimits = ImageLimits()
) -> tuple[Image.Image, dict[str, Any]]:
    """Decode the first frame to an upright RGB image plus facts about the source."""
    if not data:
        raise ImageError("empty_file", "0 bytes")
    restore_pil_open()  # a YOLO model loaded in this process patched Image.open (gpu_ops.compat)
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as exc:
        raise ImageError("not_an_image", "cannot identify image format") from exc
    except Image.DecompressionBombError as exc:
        raise ImageError("decompression_bomb", str(exc)) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError("not_an_image", f"unreadable image header: {exc}") from exc
    with image:
        width, height = image.size
        if width <= 0 or height <= 0:
            raise ImageError("not_an_image", f"invalid dimensions {width}x{height}")
        if width * height > limits.max_pixels:
            raise ImageError(
                "decompression_bomb",
                f"{width}x{height} = {width * height} pixels > limit {limits.max_pixels}",
            )
        info: dict[str, Any] = {
            "source_format": image.format or "UNKNOWN",
            "source_mode": image.mode,
        }
        try:
            info["frames"] = int(getattr(image, "n_frames", 1))
            image.seek(0)
            image.load()
            orientation = image.getexif().get(_ORIENTATION_TAG, 1)
            upright = ImageOps.exif_transpose(image)
        except Image.DecompressionBombError as exc:
            raise ImageError("decompression_bomb", str(exc)) from exc
        except EOFError as exc:
            raise ImageError("truncated", f"unexpected end of data: {exc}") from exc
        except OSError as exc:
            raise _decode_os_error(exc) from exc
        except (SyntaxError, ValueError) as exc:
            raise ImageError("not_an_image", f"corrupt image data: {exc}") from exc
        info["exif_rotated"] = orientation in range(2, 9)
        return _to_rgb(upright), info


def _decode_os_error(exc: OSError) -> ImageError:
    message = str(exc)
    if "truncated" in message:
        return ImageError("truncated", message)
    if "not available" in message:  # e.g. "decoder jpeg2k not available"
        return ImageError("unsupported_format", message)
    return ImageError("not_an_image", f"corrupt image data: {message}")


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB (16-bit scaled, alpha over white)."""
    mode = image.mode
    try:
        if mode in _SIXTEEN_BIT_MODES:
            wide = np.asarray(image).astype(np.float64)
            eight = np.clip(np.rint(wide / 257.0), 0, 255).astype(np.uint8)
            return Image.fromarray(eight).convert("RGB")
        if mode in _ALPHA_MODES or "transparency" in image.info:
            rgba = image.convert("RGBA")
            canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return Image.alpha_composite(canvas, rgba).convert("RGB")
        return image if mode == "RGB" else image.convert("RGB")
    except ValueError as exc:  # "conversion from X to RGB not supported"
        raise ImageError("unsupported_format", f"cannot convert mode {mode}: {exc}") from exc


def _hex(bits: np.ndarray) -> str:
    return np.packbits(bits.astype(np.uint8)).tobytes().hex()


def pdq(image_rgb: Image.Image) -> tuple[str, int]:
    """Return the 256-bit PDQ hash (64 hex chars, canonical order) and quality."""
    bits, quality = pdqhash.compute(np.asarray(image_rgb.convert("RGB")))
    return _hex(bits), int(quality)


def pdq_dihedral(image_rgb: Image.Image) -> tuple[str, int, tuple[str, ...]]:
    """The PDQ hash and quality, plus the hashes of the 7 other dihedral transforms of the image.

    ``pdqhash.compute_dihedral`` derives all 8 from one DCT, so this costs what :func:`pdq` costs
    (54 vs 58 ms on a 512 px photo, one core); its first hash is :func:`pdq`'s, bit for bit."""
    hashes, quality = pdqhash.compute_dihedral(np.asarray(image_rgb.convert("RGB")))
    hexes = [_hex(np.asarray(h)) for h in hashes]
    return hexes[0], int(quality), tuple(hexes[1:])


def _thumbnail_jpeg(image_rgb: Image.Image, longest_side: int) -> bytes:
    thumb = image_rgb.copy()
    thumb.thumbnail((longest_side, longest_side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    thumb.save(out, format="JPEG", quality=85)
    return out.getvalue()


def process_image_bytes(data: bytes, *, limits: ImageLimits = ImageLimits()) -> ProcessedImage:
    """Decode, normalise, thumbnail and PDQ-hash one image."""
    rgb, info = decode_image(data, limits=limits)
    pdq_hash, quality, dihedral = pdq_dihedral(rgb)
    return ProcessedImage(
        sha256=hashlib.sha256(data).hexdigest(),
        width=rgb.width,
        height=rgb.height,
        source_format=info["source_format"],
        source_mode=info["source_mode"],
        frames=info["frames"],
        exif_rotated=info["exif_rotated"],
        pdq_hash=pdq_hash,
        pdq_quality=quality,
        thumbnail_jpeg=_thumbnail_jpeg(rgb, limits.thumbnail_px),
        pdq_dihedral=dihedral,
    )


def process_uri(
    uri: str, *, limits: ImageLimits = ImageLimits(), client: httpx.Client | None = None
) -> tuple[bytes, ProcessedImage]:
    """Fetch and process one image; returns the original bytes too."""
    data = fetch_bytes(uri, limits=limits, client=client)
    return data, process_image_bytes(data, limits=limits)
