"""The pipeline's blob store resource: configuration in the Dagster UI, storage in :mod:`resources.blobs`."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from resources.blobs import KINDS, LocalBlobs, blob_key

__all__ = ["KINDS", "BlobStore"]


class BlobStore(dg.ConfigurableResource):
    root: str = Field(default=".creatorlens/blobs", description="Directory holding all blobs.")

    def _store(self) -> LocalBlobs:
        return LocalBlobs(self.root)

    def key_for(self, sha256: str, kind: str, ext: str) -> str:
        return blob_key(sha256, kind, ext)

    def path(self, key: str) -> Path:
        return self._store().path(key)

    def put(self, data: bytes, kind: str, ext: str, sha256: str | None = None) -> str:
        """Store ``data`` (if not already there) and return its key."""
        return self._store().put(data, kind, ext, sha256)

    def get(self, key: str) -> bytes:
        return self._store().get(key)

    def exists(self, key: str) -> bool:
        return self._store().exists(key)
