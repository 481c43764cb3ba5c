"""Local copies of post images, saved next to the raw pages at fetch time (``creatorlens fetch``).

Instagram CDN URLs are signed and expire within days, so the fetch command downloads each post's
images while their URLs are still valid, into the folder of the raw pages::

    <JSON folder>/media/<platform>/<post_id>_<position>.<ext>     e.g. media/instagram/3301_2.jpg

``position`` is the image's 1-based place in its post (a carousel's children 1, 2, …; a single
image or a video's cover: 1), as the images stage numbers them (``image_key``). The images stage
looks a copy up by the folder of the post's ``source`` file (:func:`local_copy_for`) before it
tries the URL; no copy, or one that cannot be read, falls back to the URL.

No Dagster and no network here: naming, saving (atomically) and finding files.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

MEDIA_DIR = "media"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"\xff\xd8\xff", 0, "jpg"),
    (b"\x89PNG\r\n\x1a\n", 0, "png"),
    (b"GIF8", 0, "gif"),
    (b"WEBP", 8, "webp"),
    (b"ftypheic", 4, "heic"),
    (b"ftypmif1", 4, "heic"),
    (b"ftypavif", 4, "avif"),
    (b"BM", 0, "bmp"),
)


def _safe(part: str) -> str:
    return _UNSAFE.sub("_", str(part)).strip("._") or "_"


def media_dir(folder: Path | str, platform: str) -> Path:
    """Where the copies of one platform's images live under a JSON folder."""
    return Path(folder) / MEDIA_DIR / _safe(platform)


def copy_stem(post_id: str, position: int = 1) -> str:
    """File name without extension of one image: ``<post_id>_<position>``."""
    return f"{_safe(post_id)}_{max(int(position), 1)}"


def image_extension(data: bytes) -> str:
    """The extension the bytes' signature says (``jpg``, ``png``, …), ``bin`` when unknown."""
    return next((ext for magic, at, ext in _MAGIC if data[at:at + len(magic)] == magic), "bin")


def find_local_copy(folder: Path | str, platform: str, post_id: str, position: int = 1) -> Path | None:
    """The saved copy of one image under ``folder`` (any extension), or ``None``."""
    directory = media_dir(folder, platform)
    if not directory.is_dir():
        return None
    stem = copy_stem(post_id, position)
    return next((p for p in sorted(directory.glob(f"{stem}.*")) if p.is_file() and not p.name.startswith(".")), None)


def save_local_copy(folder: Path | str, platform: str, post_id: str, position: int, data: bytes) -> Path:
    """Write one image's bytes atomically (tmp + ``os.replace``); returns its path."""
    directory = media_dir(folder, platform)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{copy_stem(post_id, position)}.{image_extension(data)}"
    tmp = directory / f".{path.name}.tmp-{os.getpid()}-{id(data)}"
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def local_copy_for(post: dict[str, Any]) -> Path | None:
    """The local copy of a selected image row (``platform``, ``post_id``, ``position``, ``source``):
    looked up in the folder of the raw page the post was read from. ``None`` for a post from
    MongoDB (no folder), without a source, or without a saved copy."""
    source = post.get("source")
    if not isinstance(source, str) or not source or source.startswith("mongodb:"):
        return None
    folder = Path(source).parent
    if not folder.is_dir():
        return None
    try:
        position = int(post.get("position") or 1)
    except (TypeError, ValueError):
        position = 1
    return find_local_copy(folder, str(post.get("platform") or ""), str(post.get("post_id") or ""), position)
