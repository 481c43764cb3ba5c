"""Where raw creator data comes from: a CSV drop folder and a folder of raw JSON API dumps."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from creatorlens.settings import Settings
from creatorlens.sources import SourceSnapshot, load_sources


class SourceFiles(dg.ConfigurableResource):
    """Local source folders. Missing folders are treated as empty (a fresh drop folder)."""

    csv_dir: str | None = Field(default=None, description="Folder of CSV exports (*.csv).")
    json_dir: str | None = Field(default=None, description="Folder of raw JSON API responses (*.json).")

    @classmethod
    def from_settings(cls, settings: Settings) -> SourceFiles:
        return cls(csv_dir=str(settings.resolved_csv_dir), json_dir=str(settings.resolved_json_dir))

    def csv_paths(self) -> list[Path]:
        if not self.csv_dir or not Path(self.csv_dir).is_dir():
            return []
        return sorted(Path(self.csv_dir).glob("*.csv"))

    def json_dirs(self) -> list[Path]:
        return [Path(self.json_dir)] if self.json_dir and Path(self.json_dir).is_dir() else []

    def load(self) -> SourceSnapshot:
        return load_sources(self.csv_paths(), self.json_dirs())
