"""MongoDB source: raw API responses kept in a ``raw_api_responses`` collection (pymongo).

Each document is one raw response::

    {"filename": "web_profile_info(some.user)_2024-05-01.json",   # the dump's original name
     "body": "<raw response text>" | {parsed JSON},                 # exactly what the API sent
     "status": 200, "url": "...", "fetched_at": datetime}           # optional

Documents are read in ``filename`` order, the username comes from the file name, and each user's
documents are merged by :func:`creatorlens.sources.normalise_dumps`, the same code the JSON
folder source uses, so one set of responses gives the same snapshot from either store. Stored
error responses (``status`` not 2xx) and unreadable bodies are rejects, with the reason.

Production uses ``pymongo.MongoClient(url)``; the reader takes any client with pymongo's API,
which is how the tests run it on ``mongomock`` (no MongoDB server can run on our machines).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import pymongo
from pydantic import Field

from creatorlens.settings import Settings
from creatorlens.sources import CreatorRecord, PostRecord, Reject, normalise_dumps, parse_dump_filename

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

    def ensure_indexes(self) -> None:
        self.collection.create_index("filename", unique=True)

    def _parsed(self, doc: dict[str, Any]) -> tuple[Any, Reject | None]:
        filename = str(doc.get("filename") or "")
        source = self.source(filename)
        status = doc.get("status", 200)
        if isinstance(status, int) and not 200 <= status < 300:
            return None, Reject(source, filename, f"stored error response (HTTP {status})")
        body = doc.get("body")
        if isinstance(body, bytes):
            body = body.decode("utf-8", errors="replace")
        if isinstance(body, str):
            try:
                return json.loads(body), None
            except json.JSONDecodeError as exc:
                return None, Reject(source, filename, f"invalid JSON: {exc}")
        if isinstance(body, dict | list):
            return body, None
        return None, Reject(source, filename, "document has no body")

    def read(self) -> tuple[list[CreatorRecord], list[PostRecord], list[Reject]]:
        """Every document, grouped per user (file name order) into creators, posts and rejects."""
        rejects: list[Reject] = []
        dumps: list[tuple[str, str, Any]] = []
        cursor = self.collection.find({}, {"_id": 0, "filename": 1, "body": 1, "status": 1}).sort("filename", 1)
        for doc in cursor:
            filename = str(doc.get("filename") or "")
            username = parse_dump_filename(filename)
            if username is None:
                rejects.append(Reject(self.source(filename), filename or "(no filename)", "no username in file name"))
                continue
            parsed, problem = self._parsed(doc)
            if problem is not None:
                rejects.append(problem)
                continue
            dumps.append((username, self.source(filename), parsed))
        creators, posts, dump_rejects = normalise_dumps(dumps)
        return creators, posts, rejects + dump_rejects


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

    def read(self) -> tuple[list[CreatorRecord], list[PostRecord], list[Reject]]:
        if not self.url:
            return [], [], []
        with open_store(self.url, self.database, self.collection) as store:
            return store.read()
