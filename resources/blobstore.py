"""Content-addressed blob store on a local directory (an S3-compatible store can replace it later).

Keys look like ``originals/ab/abcdef….jpg``: the sha256 of the bytes, fanned out by its first
two hex digits. Writes are atomic (temp file + rename) and idempotent: the same bytes are
written once, whoever writes them.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import dagster as dg
from pydantic import Field

KINDS = ("originals", "thumbnails", "crops")  # crops: person crops from the vision stages


class BlobStore(dg.ConfigurableResource):
    root: str = Field(default=".creatorlens/blobs", description="Directory holding all blobs.")

    def key_for(self, sha256: str, kind: str, ext: str) -> str:
        if kind not in KINDS:
            raise ValueError(f"unknown blob kind {kind!r}; expected one of {KINDS}")
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return f"{kind}/{sha256[:2]}/{sha256}.{ext.lstrip('.').lower()}"

    def path(self, key: str) -> Path:
        root = Path(self.root).resolve()
        path = (root / key).resolve()
        if root not in path.parents:
            raise ValueError(f"blob key escapes the store: {key!r}")
        return path

    def put(self, data: bytes, kind: str, ext: str, sha256: str | None = None) -> str:
        """Store ``data`` (if not already there) and return its key."""
        digest = sha256 or hashlib.sha256(data).hexdigest()
        key = self.key_for(digest, kind, ext)
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
