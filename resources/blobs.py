"""Content-addressed blobs: the interface every store offers, and the local-directory store.

Keys look like ``originals/ab/abcdef….jpg``: the sha256 of the bytes, fanned out by its first
two hex digits, so a key names the same bytes in any store. Writes are atomic (temp file +
rename) and idempotent: the same bytes are written once, whoever writes them.

No Dagster here: the app serves thumbnails through :class:`LocalBlobs` directly, and the
pipeline's resource (:class:`resources.blobstore.BlobStore`) delegates to it. An
S3-compatible store implements the same :class:`Blobs` protocol.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Protocol

KINDS = ("originals", "thumbnails", "crops")  # crops: person crops from the vision stages


def blob_key(sha256: str, kind: str, ext: str) -> str:
    """The key of the bytes whose sha256 is ``sha256``, stored as ``kind`` with extension ``ext``."""
    if kind not in KINDS:
        raise ValueError(f"unknown blob kind {kind!r}; expected one of {KINDS}")
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")
    return f"{kind}/{sha256[:2]}/{sha256}.{ext.lstrip('.').lower()}"


class Blobs(Protocol):
    def put(self, data: bytes, kind: str, ext: str, sha256: str | None = None) -> str: ...

    def get(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...


class LocalBlobs:
    """Blobs in one local directory."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()

    def path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise ValueError(f"blob key escapes the store: {key!r}")
        return path

    def put(self, data: bytes, kind: str, ext: str, sha256: str | None = None) -> str:
        """Store ``data`` (if not already there) and return its key."""
        key = blob_key(sha256 or hashlib.sha256(data).hexdigest(), kind, ext)
        target = self.path(key)
        if target.exists() and target.stat().st_size == len(data):
            return key
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return key

    def get(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def exists(self, key: str) -> bool:
        return self.path(key).exists()
