"""MongoDB source: raw API responses kept in a ``raw_api_responses`` collection (pymongo).

Each document is one raw response::

    {"filename": "web_profile_info(some.user)_2024-05-01.json",   # the dump's original name
     "body": "<raw response text>" | {parsed JSON},                 # exactly what the API sent
     "status": 200, "url": "...", "fetched_at": datetime}           # optional

This module only stores and reads documents, in ``filename`` order. What they say is read by
:func:`assets.sources.parsing.read_stored_responses` (username from the file name, each user's
documents merged by the same code the JSON folder source uses, stored error responses and
unreadable bodies as rejects with the reason), so one set of responses gives the same snapshot
from either store.

Production uses ``pymongo.MongoClient(url)``; the reader takes any client with pymongo's API,
which is how the tests run it on ``mongomock`` (no MongoDB server can run on our machines).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import pymongo
from pydantic import Field

from creatorlens.settings import Settings

DEFAULT_DATABASE = "creatorlens"
DEFAULT_COLLECTION = "raw_api_responses"


class RawResponseStore:
    """Read and write raw responses in one collection of a pymongo-compatible client."""

    def __init__(self, client: Any, database: str = DEFAULT_DATABASE, collection: str = DEFAULT_COLLECTION) -> None:
        self.collection = client[database][collection]
        self.label = f"mongodb:{database}.{collection}"

    def source(self, filename: str) -> str:
        """Reject/provenance label of one document, e.g. ``mongodb:creatorlens.raw_api_responses/x(u)_1.json``."""
        return f"{self.label}/{filename}"

    def put(self, filename: str, body: str | bytes | dict[str, Any], *, status: int = 200,
            url: str | None = None, fetched_at: datetime | None = None) -> None:
        """Upsert one response by file name (loading the same pages twice changes nothing)."""
        if isinstance(body, bytes):
            body = body.decode("utf-8", errors="replace")
        self.collection.update_one(
            {"filename": filename},
            {"$set": {"body": body, "status": status, "url": url, "fetched_at": fetched_at or datetime.now(UTC)}},
            upsert=True,
        )

    def documents(self) -> Iterator[dict[str, Any]]:
        """Every stored response as kept (``filename``, ``body``, ``status``), in file-name order."""
        yield from self.collection.find({}, {"_id": 0, "filename": 1, "body": 1, "status": 1}).sort("filename", 1)


@contextmanager
def open_store(url: str, database: str = DEFAULT_DATABASE,
               collection: str = DEFAULT_COLLECTION) -> Iterator[RawResponseStore]:
    """A store on a real pymongo client (closed afterwards)."""
    client = pymongo.MongoClient(url, serverSelectionTimeoutMS=10_000)
    try:
        yield RawResponseStore(client, database, collection)
    finally:
        client.close()


class MongoSource(dg.ConfigurableResource):
    """Raw API responses in MongoDB (``MONGODB_URL``); optional."""

    url: str | None = Field(default=None, description="MongoDB URL; empty = no MongoDB source.")
    database: str = Field(default=DEFAULT_DATABASE)
    collection: str = Field(default=DEFAULT_COLLECTION)

    @classmethod
    def from_settings(cls, settings: Settings) -> MongoSource:
        return cls(url=settings.mongodb_url, database=settings.mongodb_database,
                   collection=settings.mongodb_collection)

    @property
    def configured(self) -> bool:
        return bool(self.url)

    @property
    def label(self) -> str:
        """Where a reject from this store came from, as :class:`RawResponseStore` names it."""
        return f"mongodb:{self.database}.{self.collection}"

    def documents(self) -> list[dict[str, Any]]:
        """Every stored response (none when no URL is configured), read in one connection."""
        if not self.url:
            return []
        with open_store(self.url, self.database, self.collection) as store:
            return list(store.documents())
