"""Tests for assets.images.imaging and gpu_ops.prefetch (all inputs generated at runtime)."""

from __future__ import annotations

import hashlib
import io
import itertools
import math
import pickle
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from assets.images.imaging import (
    ImageError,
    ImageLimits,
    ProcessedImage,
    decode_image,
    fetch_bytes,
    pdq,
    process_image_bytes,
    process_uri,
)
from gpu_ops.prefetch import batched, prefetch_map
from tests.support.http import Route, serve_cdn


def _encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **params)
    return out.getvalue()


def _photo_jpeg(size: tuple[int, int] = (512, 512)) -> bytes:
    image = Image.fromarray(skdata.astronaut()).resize(size, Image.Resampling.LANCZOS)
    return _encode(image, "JPEG", quality=90)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def _header_only_png(width: int, height: int) -> bytes:
    """A PNG with a valid IHDR but no pixel data: any full decode would fail."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IEND", b"")


def _reason(data: bytes, limits: ImageLimits = ImageLimits()) -> str:
    with pytest.raises(ImageError) as info:
        process_image_bytes(data, limits=limits)
    return info.value.reason


# --------------------------------------------------------------------------- errors


def test_image_error_str_and_pickle() -> None:
    err = ImageError("http_error", "HTTP 404 for http://x/y.jpg")
    assert str(err) == "http_error: HTTP 404 for http://x/y.jpg"
    clone = pickle.loads(pickle.dumps(err))
    assert (clone.reason, clone.detail) == ("http_error", "HTTP 404 for http://x/y.jpg")
    with pytest.raises(ValueError):
        ImageError("no_such_reason")


def test_truncated_jpeg() -> None:
    data = _photo_jpeg()
    with pytest.raises(ImageError) as info:
        process_image_bytes(data[: len(data) // 2])
    assert info.value.reason == "truncated"
    assert "truncated" in info.value.detail


def test_zero_bytes() -> None:
    assert _reason(b"") == "empty_file"


def test_text_named_jpg(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    path.write_text("definitely not a jpeg\n")
    assert _reason(fetch_bytes(str(path))) == "not_an_image"


def test_decompression_bomb_header_checked_before_decode() -> None:
    # 9000x9000 = 81 MP: above our 60 MP cap, below Pillow's own global limits.
    started = time.perf_counter()
    with pytest.raises(ImageError) as info:
        process_image_bytes(_header_only_png(9000, 9000))
    assert info.value.reason == "decompression_bomb"  # a decode attempt would say "truncated"
    assert "81000000" in info.value.detail
    assert time.perf_counter() - started < 0.5


def test_huge_compressed_bomb_is_rejected_fast() -> None:
    width = height = 20_000
    row = bytes(1 + width // 8)
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    bomb = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat)
    bomb += _png_chunk(b"IEND", b"")
    assert len(bomb) < 100_000
    started = time.perf_counter()
    assert _reason(bomb) == "decompression_bomb"
    assert time.perf_counter() - started < 0.5


def test_custom_pixel_limit() -> None:
    small = _encode(Image.new("RGB", (20, 20), "red"), "PNG")
    assert _reason(small, ImageLimits(max_pixels=399)) == "decompression_bomb"
    assert process_image_bytes(small, limits=ImageLimits(max_pixels=400)).width == 20


# --------------------------------------------------------------------------- modes


def _colour_blocks() -> Image.Image:
    colours = [(200, 30, 30), (30, 180, 40), (40, 60, 210), (128, 128, 128)]
    image = Image.new("RGB", (160, 40))
    for i, colour in enumerate(colours):
        image.paste(colour, (i * 40, 0, (i + 1) * 40, 40))
    return image


def test_cmyk_jpeg_to_rgb() -> None:
    original = _colour_blocks()
    data = _encode(original.convert("CMYK"), "JPEG", quality=95)
    rgb, info = decode_image(data)
    assert info["source_mode"] == "CMYK" and info["source_format"] == "JPEG"
    assert rgb.mode == "RGB"
    decoded = np.asarray(rgb).astype(int)
    expected = np.asarray(original).astype(int)
    for i in range(4):  # block centres
        centre = decoded[20, i * 40 + 20]
        assert np.abs(centre - expected[20, i * 40 + 20]).max() <= 8, (i, centre)


def test_sixteen_bit_png_is_scaled_not_clipped() -> None:
    values = np.array([[0, 32768, 65535, 257 * 100]], dtype=np.uint16).repeat(8, axis=0)
    values = values.repeat(8, axis=1)
    data = _encode(Image.fromarray(values), "PNG")
    rgb, info = decode_image(data)
    assert info["source_mode"] in ("I;16", "I")
    row = np.asarray(rgb)[4, ::8]
    assert row[:, 0].tolist() == [0, 128, 255, 100]
    assert (row[:, 0:1] == row).all()  # grey: R == G == B


def test_animated_gif_first_frame_and_frame_count() -> None:
    frames = [Image.new("RGB", (64, 48), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    data = _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    result = process_image_bytes(data)
    assert (result.source_format, result.frames) == ("GIF", 3)
    rgb, _ = decode_image(data)
    assert rgb.getpixel((10, 10)) == (255, 0, 0)


def test_rgba_and_la_composited_on_white() -> None:
    rgba = Image.new("RGBA", (10, 10), (255, 0, 0, 255))
    rgba.paste((0, 0, 255, 0), (0, 0, 5, 10))  # left half fully transparent
    rgb, info = decode_image(_encode(rgba, "PNG"))
    assert info["source_mode"] == "RGBA"
    assert rgb.getpixel((1, 1)) == (255, 255, 255)
    assert rgb.getpixel((8, 1)) == (255, 0, 0)
    la = Image.new("LA", (4, 4), (0, 0))
    assert decode_image(_encode(la, "PNG"))[0].getpixel((0, 0)) == (255, 255, 255)


def test_palette_png() -> None:
    image = _colour_blocks().quantize(8)
    rgb, info = decode_image(_encode(image, "PNG"))
    assert info["source_mode"] == "P" and rgb.mode == "RGB"
    assert np.abs(np.asarray(rgb.getpixel((20, 20))) - (200, 30, 30)).max() <= 10


def test_exif_orientation_6_is_applied() -> None:
    upright = Image.new("RGB", (200, 100), (0, 0, 0))
    upright.paste((255, 0, 0), (0, 0, 20, 20))  # red marker top-left when upright
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # 100x200, marker bottom-left
    exif = Image.Exif()
    exif[0x0112] = 6
    data = _encode(stored, "JPEG", quality=95, exif=exif.tobytes())
    assert Image.open(io.BytesIO(data)).size == (100, 200)
    result = process_image_bytes(data)
    assert (result.width, result.height, result.exif_rotated) == (200, 100, True)
    rgb, _ = decode_image(data)
    red, _, _ = rgb.getpixel((5, 5))
    assert red > 200
    assert rgb.getpixel((195, 95))[0] < 50
    plain = process_image_bytes(_encode(upright, "JPEG"))
    assert plain.exif_rotated is False


def test_heic_roundtrip() -> None:
    import pillow_heif

    if not pillow_heif.libheif_info().get("encoders", {}).get("x265"):
        pytest.skip("libheif in this pillow-heif build has no HEVC encoder")
    original = Image.fromarray(skdata.astronaut()).resize((256, 256))
    data = _encode(original, "HEIF", quality=90)
    result = process_image_bytes(data)
    assert (result.source_format, result.width, result.height) == ("HEIF", 256, 256)
    reference, _ = pdq(original)
    distance = bin(int(reference, 16) ^ int(result.pdq_hash, 16)).count("1")
    assert distance <= 31


# --------------------------------------------------------------------------- outputs


def test_processed_image_fields_and_sha256() -> None:
    data = _photo_jpeg((1000, 500))
    result = process_image_bytes(data)
    assert isinstance(result, ProcessedImage)
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert (result.width, result.height, result.frames) == (1000, 500, 1)
    assert (result.source_format, result.source_mode) == ("JPEG", "RGB")
    assert len(result.pdq_hash) == 64 and int(result.pdq_hash, 16) >= 0
    assert result.pdq_quality == 100
    thumb = Image.open(io.BytesIO(result.thumbnail_jpeg))
    assert (thumb.format, thumb.mode, thumb.size) == ("JPEG", "RGB", (400, 200))


def test_thumbnail_never_upscales() -> None:
    result = process_image_bytes(_photo_jpeg((300, 150)))
    assert Image.open(io.BytesIO(result.thumbnail_jpeg)).size == (300, 150)
    tall = process_image_bytes(_photo_jpeg((300, 900)), limits=ImageLimits(thumbnail_px=90))
    assert Image.open(io.BytesIO(tall.thumbnail_jpeg)).size == (30, 90)


def test_pdq_flat_image_has_low_quality() -> None:
    _, quality = pdq(Image.new("RGB", (128, 128), (90, 90, 90)))
    assert quality == 0


# --------------------------------------------------------------------------- local fetch


def test_fetch_local_path_and_file_uri(tmp_path: Path) -> None:
    data = _photo_jpeg((64, 64))
    path = tmp_path / "dir with space" / "a.jpg"
    path.parent.mkdir()
    path.write_bytes(data)
    assert fetch_bytes(str(path)) == data
    assert fetch_bytes(path.as_uri()) == data
    raw, result = process_uri(path.as_uri())
    assert raw == data and result.width == 64


@pytest.mark.parametrize(
    ("name", "content", "limits", "reason"),
    [
        ("missing.jpg", None, ImageLimits(), "not_found"),
        ("big.jpg", b"x" * 101, ImageLimits(max_bytes=100), "too_large"),
        ("empty.jpg", b"", ImageLimits(), "empty_file"),
    ],
)
def test_fetch_local_errors(
    tmp_path: Path, name: str, content: bytes | None, limits: ImageLimits, reason: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ImageError) as info:
        fetch_bytes(str(path), limits=limits)
    assert info.value.reason == reason
    assert str(path) in info.value.detail


def test_fetch_directory_and_unknown_scheme(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="not_found"):
        fetch_bytes(str(tmp_path))
    with pytest.raises(ImageError, match="not_found: unsupported URI scheme 'ftp'"):
        fetch_bytes("ftp://example.com/a.jpg")


# --------------------------------------------------------------------------- HTTP

_IMAGE = _photo_jpeg((80, 60))
_SLOW_S = 1.5


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """The shared loopback server (tests/support/http.py) with the routes these tests need."""
    with serve_cdn() as cdn:
        cdn.routes.update({
            "/image.jpg": Route(200, _IMAGE, "image/jpeg"),
            "/octet": Route(200, _IMAGE, "application/octet-stream"),
            "/redirect": Route(302, b"", "text/plain", headers={"Location": "/image.jpg"}),
            "/page.html": Route(200, b"<html>login wall</html>", "text/html; charset=utf-8"),
            "/huge-declared": Route(200, b"\xff" * 5000, "image/jpeg"),
            "/huge-streamed": Route(200, b"\xff" * 5000, "image/jpeg", send_length=False),
            "/slow": Route(200, _IMAGE, "image/jpeg", delay_s=_SLOW_S),
        })
        yield cdn.base_url


_HTTP_LIMITS = ImageLimits(max_bytes=4000, timeout_s=0.5)


def test_http_ok(server: str) -> None:
    assert len(_IMAGE) < _HTTP_LIMITS.max_bytes < 5000
    assert fetch_bytes(f"{server}/image.jpg", limits=_HTTP_LIMITS) == _IMAGE
    assert fetch_bytes(f"{server}/octet", limits=_HTTP_LIMITS) == _IMAGE
    with httpx.Client() as client:
        raw, result = process_uri(f"{server}/redirect", limits=_HTTP_LIMITS, client=client)
    assert raw == _IMAGE
    assert (result.width, result.height) == (80, 60)


@pytest.mark.parametrize(
    ("path", "reason", "detail"),
    [
        ("/nope", "http_error", "HTTP 404"),
        ("/page.html", "bad_content_type", "text/html"),
        ("/huge-declared", "too_large", "Content-Length 5000"),
        ("/huge-streamed", "too_large", "body exceeds"),
        ("/slow", "timeout", "timed out"),
    ],
)
def test_http_errors(server: str, path: str, reason: str, detail: str) -> None:
    started = time.perf_counter()
    with pytest.raises(ImageError) as info:
        fetch_bytes(f"{server}{path}", limits=_HTTP_LIMITS)
    assert info.value.reason == reason
    assert detail in info.value.detail
    assert time.perf_counter() - started < _SLOW_S


def test_http_connection_refused() -> None:
    with pytest.raises(ImageError) as info:
        fetch_bytes("http://127.0.0.1:9/x.jpg", limits=ImageLimits(timeout_s=2))
    assert info.value.reason == "network_error"


# --------------------------------------------------------------------------- prefetch


def _square_or_fail(x: int) -> int:
    if x % 5 == 3:
        raise ValueError(f"bad {x}")
    time.sleep(0.001 * (x % 3))
    return x * x


def test_batched() -> None:
    assert list(batched(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(batched([], 2)) == []
    with pytest.raises(ValueError):
        list(batched([1], 0))


@pytest.mark.parametrize("chunksize", [1, 4])
def test_prefetch_thread_ordered_with_exceptions(chunksize: int) -> None:
    results = list(prefetch_map(_square_or_fail, range(40), workers=4, chunksize=chunksize))
    assert [item for item, _ in results] == list(range(40))
    for item, value in results:
        if item % 5 == 3:
            assert isinstance(value, ValueError) and str(value) == f"bad {item}"
        else:
            assert value == item * item


def test_prefetch_unordered() -> None:
    results = dict(prefetch_map(_square_or_fail, range(30), workers=3, ordered=False))
    assert sorted(results) == list(range(30))
    assert results[4] == 16 and isinstance(results[8], ValueError)


def test_prefetch_is_lazy_and_bounded() -> None:
    pulled = 0

    def source() -> Iterator[int]:
        nonlocal pulled
        for i in itertools.count():
            pulled += 1
            yield i

    workers, chunksize = 2, 3
    stream = prefetch_map(lambda x: x + 1, source(), workers=workers, chunksize=chunksize)
    consumed = 0
    for item, value in itertools.islice(stream, 100):
        consumed += 1
        assert value == item + 1
        assert pulled - consumed <= 2 * workers * chunksize
    stream.close()
    assert consumed == 100


def test_prefetch_process_mode() -> None:
    items = [4.0, 9.0, -1.0, 16.0]
    results = list(prefetch_map(math.sqrt, items, workers=2, mode="process", chunksize=2))
    assert [v for _, v in results[:2]] == [2.0, 3.0]
    assert isinstance(results[2][1], ValueError) and results[3][1] == 4.0


def test_prefetch_process_mode_images() -> None:
    inputs = [_photo_jpeg((64, 64)), b"", b"plain text"]
    results = list(prefetch_map(process_image_bytes, inputs, workers=2, mode="process"))
    assert isinstance(results[0][1], ProcessedImage) and results[0][1].width == 64
    assert [r.reason for _, r in results[1:] if isinstance(r, ImageError)] == [
        "empty_file",
        "not_an_image",
    ]


def test_prefetch_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        list(prefetch_map(abs, [1], mode="fiber"))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        list(prefetch_map(abs, [1], workers=0))


def test_gpu_ops_has_no_heavy_imports() -> None:
    code = (
        "import importlib, pkgutil, sys, gpu_ops\n"
        "for m in pkgutil.iter_modules(gpu_ops.__path__): importlib.import_module('gpu_ops.' + m.name)\n"
        "print(sorted(m for m in ('dagster', 'sqlalchemy', 'httpx') if m in sys.modules))"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
