"""Generate a realistic, fully offline sample data set of creators, posts and images.

Photos come from scikit-image's bundled ``skimage.data`` images (no download). The
output contains near and exact duplicates, a few non-duplicates that look related, and
deliberately broken inputs so a pipeline run exercises its failure paths.
"""

from __future__ import annotations

import csv
import io
import json
import random
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps
from skimage import data as skdata

__all__ = ["CSV_HEADER", "OFFLINE_PHOTOS", "SampleManifest", "build_sample_data", "write_creators_csv"]

CSV_HEADER = ["Rank", "Username", "Name", "Followers", "ER", "Country", "Genre", "Details"]

# skimage.data loaders whose files ship inside the wheel (no pooch / network needed).
OFFLINE_PHOTOS: dict[str, Callable[[], np.ndarray]] = {
    "astronaut": skdata.astronaut,
    "camera": skdata.camera,
    "coffee": skdata.coffee,
    "chelsea": skdata.chelsea,
    "rocket": skdata.rocket,
    "ihc": skdata.immunohistochemistry,
    "hubble": skdata.hubble_deep_field,
    "coins": skdata.coins,
    "logo": skdata.logo,
    "retina": skdata.retina,
    "moon": skdata.moon,
    "brick": skdata.brick,
    "grass": skdata.grass,
    "gravel": skdata.gravel,
    "horse": lambda: (~skdata.horse()).astype(np.uint8) * 255,  # boolean silhouette → 8-bit
    "clock": skdata.clock,
    "colorwheel": skdata.colorwheel,
}

_BASE_TIME = int(datetime(2024, 5, 1, 12, tzinfo=UTC).timestamp())
_SHORTCODE_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@dataclass(frozen=True)
class SampleManifest:
    """What :func:`build_sample_data` wrote and what a pipeline should find in it."""

    root: Path
    csv_paths: list[Path]
    json_dirs: list[Path]
    image_dir: Path
    n_creators_expected: int
    broken_image_files: dict[str, str]  # file name -> expected ImageError reason
    near_duplicate_groups: list[list[str]]  # pairwise PDQ distance <= 31
    exact_duplicate_groups: list[list[str]]  # byte-identical files
    not_near_duplicate_pairs: list[tuple[str, str]]  # look related, PDQ distance > 31
    usernames_expected: list[str]  # valid creators across CSV and JSON
    malformed_json_files: list[str]
    missing_image_refs: list[str]  # referenced by posts but absent on disk
    n_posts_expected: int  # distinct post ids across all parseable JSON files


# --------------------------------------------------------------------------- images


def _encode(image: Image.Image, fmt: str, **params: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **params)
    return out.getvalue()


def _jpeg(image: Image.Image, quality: int = 92, **params: Any) -> bytes:
    return _encode(image, "JPEG", quality=quality, **params)


def _photo(name: str) -> Image.Image:
    """An offline skimage photo as an RGB image no larger than 640 px."""
    image = Image.fromarray(OFFLINE_PHOTOS[name]())
    image = image.convert("RGBA") if image.mode == "RGBA" else image.convert("RGB")
    image.thumbnail((640, 640), Image.Resampling.LANCZOS)
    return image


def _center_crop(image: Image.Image, fraction: float) -> Image.Image:
    w, h = image.size
    cw, ch = round(w * fraction), round(h * fraction)
    left, top = (w - cw) // 2, (h - ch) // 2
    return image.crop((left, top, left + cw, top + ch))


def _resize(image: Image.Image, fraction: float) -> Image.Image:
    size = (round(image.width * fraction), round(image.height * fraction))
    return image.resize(size, Image.Resampling.LANCZOS)


def _caption(image: Image.Image, text: str) -> Image.Image:
    """Overlay a short caption in the lower part of the image."""
    out = image.copy()
    draw = ImageDraw.Draw(out)
    font = ImageFont.load_default(size=max(12, out.height // 20))
    xy = (round(out.width * 0.05), round(out.height * 0.85))
    draw.text(xy, text, fill=(255, 255, 255), font=font, stroke_width=2, stroke_fill=(0, 0, 0))
    return out


def _exif_rotated_jpeg(upright: Image.Image) -> bytes:
    """Pixels stored sideways with EXIF orientation 6 (display = rotate 90 deg CW)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return _jpeg(upright.transpose(Image.Transpose.ROTATE_90), exif=exif.tobytes())


def _sixteen_bit_png(gray: Image.Image, rng: np.random.Generator) -> bytes:
    """A 16-bit grayscale PNG whose values round back to ``gray`` when divided by 257."""
    wide = np.asarray(gray.convert("L")).astype(np.int32) * 257
    wide += rng.integers(0, 128, size=wide.shape)  # low-byte detail, < 0.5 after / 257
    return _encode(Image.fromarray(np.clip(wide, 0, 65535).astype(np.uint16)), "PNG")


def _animated_gif(first: Image.Image) -> bytes:
    small = _resize(first, 0.6)
    frames = [small, ImageOps.invert(small), small.transpose(Image.Transpose.ROTATE_180)]
    return _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=200, loop=0)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def _bomb_png(width: int, height: int) -> bytes:
    """A valid all-black 1-bit PNG: huge dimensions, tiny file (zlib of zero rows)."""
    row = bytes(1 + (width + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


@dataclass(frozen=True)
class _ImageSet:
    """Generated image files plus what is expected of them."""

    files: dict[str, bytes]
    broken: dict[str, str]
    near_groups: list[list[str]]
    exact_groups: list[list[str]]
    mirrored: list[tuple[str, str]]
    not_near: list[tuple[str, str]]


def _build_images(rng: np.random.Generator) -> _ImageSet:
    """Originals, duplicate-family variants, negatives and broken files."""
    astronaut, coffee, chelsea = _photo("astronaut"), _photo("coffee"), _photo("chelsea")
    rocket, ihc, camera = _photo("rocket"), _photo("ihc"), _photo("camera").convert("L")
    coins, hubble = _photo("coins").convert("L"), _photo("hubble")
    files: dict[str, bytes] = {
        "astronaut.jpg": _jpeg(astronaut),
        "astronaut_crop98.jpg": _jpeg(_center_crop(astronaut, 0.98)),
        "astronaut_resize60.jpg": _jpeg(_resize(astronaut, 0.6)),
        "astronaut_lowq.jpg": _jpeg(astronaut, quality=15),
        "astronaut_caption.jpg": _jpeg(_caption(astronaut, "#repost @astro.sam")),
        "astronaut_flip.jpg": _jpeg(ImageOps.mirror(astronaut)),
        "astronaut_crop90.jpg": _jpeg(_center_crop(astronaut, 0.90)),
        "coffee.jpg": _jpeg(coffee),
        "coffee_crop98.jpg": _jpeg(_center_crop(coffee, 0.98)),
        "coffee_lowq.jpg": _jpeg(coffee, quality=20),
        "coffee_anim.gif": _animated_gif(coffee),
        "chelsea.jpg": _jpeg(chelsea),
        "chelsea_resize60.jpg": _jpeg(_resize(chelsea, 0.6)),
        "chelsea_caption.jpg": _jpeg(_caption(chelsea, "so fluffy")),
        "rocket.jpg": _jpeg(rocket),
        "rocket_exif6.jpg": _exif_rotated_jpeg(rocket),
        "ihc.jpg": _jpeg(ihc),
        "ihc_cmyk.jpg": _jpeg(ihc.convert("CMYK")),
        "camera.png": _encode(camera, "PNG"),
        "camera_16bit.png": _sixteen_bit_png(camera, rng),
        "coins.png": _encode(coins, "PNG"),
        "hubble_palette.png": _encode(hubble.quantize(64), "PNG"),
        "hubble.jpg": _jpeg(hubble),
        "logo.png": _encode(_photo("logo"), "PNG"),
        # Distinct good photos, so that no creator has more than one broken image in six.
        "moon.jpg": _jpeg(_photo("moon")),
        "brick.jpg": _jpeg(_photo("brick")),
        "grass.jpg": _jpeg(_photo("grass")),
        "gravel.jpg": _jpeg(_photo("gravel")),
        "horse.png": _encode(_photo("horse"), "PNG"),
        "clock.jpg": _jpeg(_photo("clock")),
        "colorwheel.png": _encode(_photo("colorwheel"), "PNG"),
    }
    files["astronaut_repost.jpg"] = files["astronaut.jpg"]
    full = _jpeg(_photo("retina"))
    broken = {
        "truncated.jpg": ("truncated", full[: len(full) * 3 // 5]),
        "empty.jpg": ("empty_file", b""),
        "not_image.jpg": ("not_an_image", b"<html><body>This is not a JPEG.</body></html>\n"),
        "bomb.png": ("decompression_bomb", _bomb_png(20_000, 20_000)),
        "bomb_64mp.png": ("decompression_bomb", _bomb_png(8_000, 8_000)),
    }
    files.update({name: payload for name, (_, payload) in broken.items()})
    near_groups = [
        [
            "astronaut.jpg",
            "astronaut_repost.jpg",
            "astronaut_crop98.jpg",
            "astronaut_resize60.jpg",
            "astronaut_lowq.jpg",
            "astronaut_caption.jpg",
        ],
        ["coffee.jpg", "coffee_crop98.jpg", "coffee_lowq.jpg", "coffee_anim.gif"],
        ["chelsea.jpg", "chelsea_resize60.jpg", "chelsea_caption.jpg"],
        ["rocket.jpg", "rocket_exif6.jpg"],
        ["ihc.jpg", "ihc_cmyk.jpg"],
        ["camera.png", "camera_16bit.png"],
        ["hubble.jpg", "hubble_palette.png"],
    ]
    return _ImageSet(
        files=files,
        broken={name: reason for name, (reason, _) in broken.items()},
        near_groups=near_groups,
        exact_groups=[["astronaut.jpg", "astronaut_repost.jpg"]],
        # A mirrored repost: far for the plain PDQ hash, near through its dihedral (flipped) hash.
        mirrored=[("astronaut.jpg", "astronaut_flip.jpg")],
        not_near=[
            ("astronaut.jpg", "astronaut_crop90.jpg"),  # PDQ tolerates ~2% crops, not 10%
        ],
    )


# --------------------------------------------------------------------------- creators

# JSON creators: username -> (full name, category, image files posted, newest first).
_JSON_CREATORS: dict[str, tuple[str, str, list[str]]] = {
    "astro.sam": (
        "Sam Astro",
        "Science",
        [
            "astronaut.jpg",
            "astronaut_crop98.jpg",
            "astronaut_flip.jpg",
            "truncated.jpg",
            "hubble.jpg",
            "moon.jpg",
        ],
    ),
    "coffee_lab": (
        "Coffee Lab ☕",
        "Food & Drink",
        ["coffee.jpg", "coffee_lowq.jpg", "coffee_anim.gif", "not_image.jpg", "brick.jpg", "gravel.jpg"],
    ),
    "chelsea.cat": (
        "Chelsea the Cat",
        "Pets",
        ["chelsea.jpg", "chelsea_resize60.jpg", "empty.jpg", "logo.png", "grass.jpg", "horse.png"],
    ),
    "rocket.launches": (
        "Rocket Launches",
        "Science",
        ["rocket.jpg", "rocket_exif6.jpg", "bomb.png", "clock.jpg", "colorwheel.png", "moon.jpg"],
    ),
    "camera.club": (
        "Camera Club",
        "Photography",
        [
            "camera.png",
            "camera_16bit.png",
            "coins.png",
            "hubble_palette.png",
            "bomb_64mp.png",
            "astronaut_crop90.jpg",
        ],
    ),
    "lab.slides": (
        "Lab Slides",
        "Education",
        ["ihc.jpg", "ihc_cmyk.jpg", "deleted_post.jpg", "brick.jpg", "grass.jpg", "horse.png"],
    ),
    "pixel.thief": (
        "Pixel Thief",
        "Entertainment",
        [
            "astronaut_repost.jpg",
            "astronaut_caption.jpg",
            "astronaut_resize60.jpg",
            "astronaut_lowq.jpg",
            "coffee_crop98.jpg",
            "chelsea_caption.jpg",
        ],
    ),
}
_MISSING_IMAGES = ["deleted_post.jpg"]

_CSV_ROWS: list[list[str]] = [
    ["astro.sam", "Sam Astro", "1.2M", "2.31%", "United States", "Science",
     "Former flight engineer.\nTalks about space suits, EVAs & training."],
    ["coffee_lab", "Coffee Lab ☕", "350K", "4.05%", "Italy", "Food & Drink",
     "Home barista.\nLatte art, beans, grinders\n— DM for collabs"],
    ["chelsea.cat", "Chelsea the Cat", "98.4K", "6.10%", "United Kingdom", "Pets", "Just a cat."],
    ["rocket.launches", "Rocket Launches", "2.5M", "1.02%", "United States", "Science",
     "Every launch, every pad.\nT-minus alerts in stories"],
    ["camera.club", "Camera Club", "12,345", "3.30%", "Germany", "Photography",
     'Film & digital.\n"Grain is good."'],
    ["moon.watch", "Moon Watch", "45.6K", "2.75%", "Chile", "Science", "Lunar phases nightly"],
    ["coin.collector", "Coin Collector", "8,901", "5.12%", "Canada", "Hobbies",
     "Numismatics, mostly\nCanadian & Roman coins"],
    ["brick.works", "Brick Works", "120K", "1.88%", "Netherlands", "Architecture",
     "Bricks, walls, patterns"],
    ["retina.scan", "Dr. Retina", "3.3K", "7.40%", "India", "Health",
     "Ophthalmologist.\nNot medical advice."],
    ["page.turner", "Page Turner 📚", "770", "9.01%", "Brazil", "Books",
     "Reading 100 books a year"],
    ["hubble.fan", "Hubble Fan", "1,204,567", "0.95%", "Australia", "Science",
     "Deep fields & nebulae"],
    ["grass.roots", "Grass Roots", "15K", "3.95%", "Ireland", "Gardening",
     "Lawns, meadows\nand wildflowers"],
]
# Rows a loader must reject (wrong column count, invalid handle) or flag (bad followers).
_MALFORMED_CSV_ROWS: list[list[str]] = [
    ["13", "ghost.row", "Ghost Row", "1K", "1.00%", "Nowhere"],
    ["14", "not a handle!", "Bad Handle", "5K", "2.00%", "France", "Lifestyle", "Spaces"],
    ["15", "pixel.thief", "Pixel Thief", "12abc", "3.00%", "Spain", "Entertainment", "Reposts"],
]


def _csv_bytes() -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for rank, row in enumerate(_CSV_ROWS, start=1):
        writer.writerow([str(rank), *row])
    writer.writerows(_MALFORMED_CSV_ROWS)
    return out.getvalue().encode("utf-8-sig")


def _shortcode(rng: random.Random) -> str:
    return "".join(rng.choice(_SHORTCODE_ALPHABET) for _ in range(11))


def _posts(username: str, images: list[str], rng: random.Random) -> list[dict[str, Any]]:
    """Posts newest first; each references one image by relative path."""
    posts = []
    taken_at = _BASE_TIME - rng.randrange(3_600, 86_400)
    for i, image in enumerate(images):
        posts.append(
            {
                "id": str(3_300_000_000_000_000_000 + rng.randrange(10**15)),
                "shortcode": _shortcode(rng),
                "image": f"../images/{image}",
                "taken_at": taken_at,
                "likes": rng.randrange(50, 50_000),
                "comments": rng.randrange(0, 900),
                "caption": f"Post {i + 1} by @{username} ✨\n#{username.split('.')[0]} #sample",
            }
        )
        taken_at -= rng.randrange(3_600, 7 * 86_400)
    return posts


def _web_profile_info(
    username: str, full_name: str, category: str, posts: list[dict[str, Any]], rng: random.Random
) -> dict[str, Any]:
    edges = [
        {
            "node": {
                "id": p["id"],
                "shortcode": p["shortcode"],
                "display_url": p["image"],
                "is_video": False,
                "taken_at_timestamp": p["taken_at"],
                "edge_liked_by": {"count": p["likes"]},
                "edge_media_to_comment": {"count": p["comments"]},
                "edge_media_to_caption": {"edges": [{"node": {"text": p["caption"]}}]},
            }
        }
        for p in posts
    ]
    return {
        "data": {
            "user": {
                "id": str(rng.randrange(10**9, 10**10)),
                "username": username,
                "full_name": full_name,
                "biography": f"{full_name} · {category}\nsample data",
                "category_name": category,
                "edge_followed_by": {"count": rng.randrange(500, 3_000_000)},
                "is_business_account": rng.random() < 0.5,
                "is_verified": rng.random() < 0.3,
                "edge_owner_to_timeline_media": {"count": len(posts), "edges": edges},
            }
        },
        "status": "ok",
    }


def _user_feed(posts: list[dict[str, Any]]) -> dict[str, Any]:
    items = [
        {
            "id": p["id"],
            "code": p["shortcode"],
            "taken_at": p["taken_at"],
            "like_count": p["likes"],
            "comment_count": p["comments"],
            "media_type": 1,
            "caption": {"text": p["caption"]},
            "image_versions2": {"candidates": [{"url": p["image"]}]},
        }
        for p in posts
    ]
    return {"data": {"items": items}, "status": "ok"}


def _json_bytes(payload: dict[str, Any]) -> bytes:
    return (json.dumps(payload, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def _build_json(rng: random.Random) -> tuple[dict[str, bytes], int]:
    """JSON dumps keyed by file name, and the number of distinct post ids."""
    files: dict[str, bytes] = {}
    post_ids: set[str] = set()
    for username, (full_name, category, images) in _JSON_CREATORS.items():
        posts = _posts(username, images, rng)
        post_ids.update(p["id"] for p in posts)
        profile = _web_profile_info(username, full_name, category, posts[:3], rng)
        files[f"web_profile_info({username})_2024-05-01.json"] = _json_bytes(profile)
        # Feed pages overlap the profile dump and each other by one post.
        if len(posts) > 3:
            files[f"user_feed({username})_page1.json"] = _json_bytes(_user_feed(posts[2:5]))
        if len(posts) > 5:
            files[f"user_feed({username})_page2.json"] = _json_bytes(_user_feed(posts[4:]))
        if username == "coffee_lab":  # same content again, but no "(username)" in the name
            files["export_2024-05-02.json"] = _json_bytes(profile)
    # Invalid JSON (cut off mid-object).
    files["web_profile_info(broken.user)_x.json"] = b'{"data": {"user": {"username": "broken",'
    return files, len(post_ids)


# --------------------------------------------------------------------------- entry point


def _write_if_changed(path: Path, payload: bytes) -> None:
    if path.is_file() and path.read_bytes() == payload:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)


def build_sample_data(root: Path, *, seed: int = 7) -> SampleManifest:
    """Write the sample data set under ``root`` (byte-identical for the same seed)."""
    root = Path(root)
    image_dir, csv_dir, json_dir = root / "images", root / "csv", root / "json"
    images = _build_images(np.random.default_rng(seed))
    json_files, n_posts = _build_json(random.Random(seed))
    for name, payload in images.files.items():
        _write_if_changed(image_dir / name, payload)
    for name, payload in json_files.items():
        _write_if_changed(json_dir / name, payload)
    csv_path = csv_dir / "creators.csv"
    _write_if_changed(csv_path, _csv_bytes())

    usernames = sorted({row[0] for row in _CSV_ROWS} | set(_JSON_CREATORS))
    return SampleManifest(
        root=root,
        csv_paths=[csv_path],
        json_dirs=[json_dir],
        image_dir=image_dir,
        n_creators_expected=len(usernames),
        broken_image_files=dict(images.broken),
        near_duplicate_groups=[list(g) for g in images.near_groups],
        exact_duplicate_groups=[list(g) for g in images.exact_groups],
        not_near_duplicate_pairs=list(images.not_near),
        usernames_expected=usernames,
        malformed_json_files=["web_profile_info(broken.user)_x.json"],
        missing_image_refs=list(_MISSING_IMAGES),
        n_posts_expected=n_posts,
    )


def write_creators_csv(path: Path, usernames: list[str]) -> Path:
    """A minimal export of ``usernames`` in the sample CSV layout (no posts): sensor tests, benchmarks."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for rank, name in enumerate(usernames, start=1):
        writer.writerow([str(rank), name, name.replace(".", " ").title(), f"{1000 + rank}", "1.00%", "Nowhere",
                         "Testing", "generated"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(out.getvalue(), encoding="utf-8")
    return path
