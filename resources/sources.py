"""Where raw creator data comes from: a CSV drop folder, a folder of raw JSON API dumps and,
optionally, raw API responses in MongoDB (``MONGODB_URL``).

This resource says where the inputs are; reading what they say is the sources stage's job
(:func:`assets.sources.assets.load_snapshot`)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from creatorlens.settings import Settings
from resources.mongo import DEFAULT_COLLECTION, DEFAULT_DATABASE, MongoSource


class SourceFiles(dg.ConfigurableResource):
    """Local source folders. Missing folders are treated as empty (a fresh drop folder)."""

    csv_dir: str | None = Field(default=None, description="Folder of CSV exports (*.csv).")
    json_dir: str | None = Field(default=None, description="Folder of raw JSON API responses (*.json).")
    csv_header_map: str | None = Field(default=None, description="CSV header aliases per field (JSON); empty = "
                                       "the built-in aliases of common exports.")
    mongodb_url: str | None = Field(default=None, description="MongoDB with raw API responses; empty = none.")
    mongodb_database: str = Field(default=DEFAULT_DATABASE)
    mongodb_collection: str = Field(default=DEFAULT_COLLECTION)

    @classmethod
    def from_settings(cls, settings: Settings) -> SourceFiles:
        return cls(csv_dir=str(settings.resolved_csv_dir), json_dir=str(settings.resolved_json_dir),
                   csv_header_map=settings.csv_header_map,
                   mongodb_url=settings.mongodb_url, mongodb_database=settings.mongodb_database,
                   mongodb_collection=settings.mongodb_collection)

    def csv_paths(self) -> list[Path]:
        if not self.csv_dir or not Path(self.csv_dir).is_dir():
            return []
        return sorted(Path(self.csv_dir).glob("*.csv"))

    def json_dirs(self) -> list[Path]:
        return [Path(self.json_dir)] if self.json_dir and Path(self.json_dir).is_dir() else []

    def mongo(self) -> MongoSource:
        return MongoSource(url=self.mongodb_url, database=self.mongodb_database, collection=self.mongodb_collection)
