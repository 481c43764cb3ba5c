"""Tagging knobs shared by the tagging assets and checks, visible (and overridable) in the Dagster UI."""

from __future__ import annotations

import threading
from pathlib import Path

import dagster as dg
from pydantic import Field

from assets.tagging.search import SearchSettings
from creatorlens.settings import Settings
from assets.tagging.taxonomy import Taxonomy, load_taxonomy

_cache_lock = threading.Lock()
_taxonomies: dict[tuple[str, int, int], Taxonomy] = {}


def cached_taxonomy(path: str | Path) -> Taxonomy:
    """Load and validate once per file content (keyed by path, mtime and size)."""
    p = Path(path).resolve()
    stat = p.stat() if p.exists() else None
    key = (str(p), stat.st_mtime_ns if stat else 0, stat.st_size if stat else 0)
    with _cache_lock:
        if key not in _taxonomies:
            _taxonomies[key] = load_taxonomy(p)
        return _taxonomies[key]


class TaggingConfig(dg.ConfigurableResource):
    taxonomy_path: str = Field(description="Tag taxonomy YAML.")
    review_floor_ratio: float = Field(default=0.5, ge=0.0, le=1.0,
                                      description="Scores from this fraction of a tag's threshold up to it are queued.")
    labels_csv: str | None = Field(default=None, description="Labelled examples for calibration (image_key,tag,label).")
    precision_floor: float | None = Field(default=None, ge=0.0, le=1.0,
                                          description="Calibrate for this precision instead of the best F1.")
    min_labels: int = Field(default=3, ge=1, description="Positives and negatives needed to calibrate a tag.")
    hnsw_m: int = Field(default=16, ge=2, le=100)
    hnsw_ef_construction: int = Field(default=128, ge=4, le=1000)
    hnsw_ef_search: int = Field(default=40, ge=1, le=1000)
    decode_max_side: int | None = Field(default=None, ge=32,
                                        description="Longest side images are decoded to (default: 2x model input).")
    decode_workers: int = Field(default=4, ge=1, description="Decode threads feeding the embedder.")

    @classmethod
    def from_settings(cls, settings: Settings) -> TaggingConfig:
        """Build from settings, validating the taxonomy now: a refused or broken one fails start-up."""
        cached_taxonomy(settings.taxonomy_path)
        return cls(
            taxonomy_path=str(settings.taxonomy_path),
            review_floor_ratio=settings.tag_review_floor,
            labels_csv=str(settings.tag_labels_csv) if settings.tag_labels_csv else None,
            precision_floor=settings.tag_precision_floor,
            min_labels=settings.tag_min_labels,
            hnsw_m=settings.hnsw_m,
            hnsw_ef_construction=settings.hnsw_ef_construction,
            hnsw_ef_search=settings.hnsw_ef_search,
        )

    def taxonomy(self) -> Taxonomy:
        return cached_taxonomy(self.taxonomy_path)

    def search_settings(self) -> SearchSettings:
        return SearchSettings(ef_search=self.hnsw_ef_search)
