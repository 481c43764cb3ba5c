"""Tagging knobs shared by the tagging assets and checks, visible (and overridable) in the Dagster UI."""

from __future__ import annotations

import threading
from pathlib import Path

import dagster as dg

from assets.tagging.taxonomy import Taxonomy, load_taxonomy
from creatorlens.settings import FromSettings, Settings, knob

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


class TaggingConfig(FromSettings, dg.ConfigurableResource):
    """Each field is declared once, in :class:`creatorlens.settings.Settings`; :func:`knob` exposes it here."""

    taxonomy_path: str = knob("taxonomy_path")
    review_floor_ratio: float = knob("tag_review_floor")
    labels_csv: str | None = knob("tag_labels_csv")
    precision_floor: float | None = knob("tag_precision_floor")
    min_labels: int = knob("tag_min_labels")
    hnsw_m: int = knob("hnsw_m")
    hnsw_ef_construction: int = knob("hnsw_ef_construction")
    hnsw_ef_search: int = knob("hnsw_ef_search")
    decode_max_side: int | None = knob("tag_decode_max_side")
    decode_workers: int = knob("tag_decode_workers")
    ray_address: str | None = knob("ray_address")
    ray_actors: int = knob("ray_actors")
    ray_gpus_per_actor: float = knob("ray_gpus_per_actor")
    ray_actor_resource: str | None = knob("ray_actor_resource")
    review_order_clusters: int = knob("review_order_clusters")
    history_change: float = knob("tag_history_change")

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: object) -> TaggingConfig:
        """Build from settings, validating the taxonomy now: a refused or broken one fails start-up."""
        config = super().from_settings(settings, **overrides)
        cached_taxonomy(config.taxonomy_path)
        return config

    def taxonomy(self) -> Taxonomy:
        return cached_taxonomy(self.taxonomy_path)
