"""Plain-text warehouse summary: rows per table, duplicates, failures with their reasons."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import Engine
from tabulate import tabulate

from creatorlens.queries import load_queries
from creatorlens.settings import Settings


def _short(path: str) -> str:
    return Path(path).name if "/" in path else path


def stage_skips(settings: Settings) -> dict[str, tuple[str, str]]:
    """Stage (as ``stage_rows`` names it) → why it cannot run and what fixes it, for the stages that can't."""
    from assets.profiles.enrichment import profile_api_skip
    from assets.profiles.llm_profiles import llm_skip
    from assets.tagging.assets import embedder_skip
    from assets.vision.faces import face_embedder_skip
    from resources.llm import LlmClient
    from resources.models import ModelRegistry
    from resources.profile_api import ProfileApi

    models = ModelRegistry.from_settings(settings)
    found = {
        "embeddings": embedder_skip(models),
        "face embeddings": face_embedder_skip(models),
        "enrichment": profile_api_skip(ProfileApi.from_settings(settings)),
        "llm profiles": llm_skip(LlmClient.from_settings(settings)),
    }
    found["tags"] = found["creator tags"] = found["embeddings"]
    return {stage: skip for stage, skip in found.items() if skip is not None}


def warehouse_summary(engine: Engine, *, limit: int = 20, skips: dict[str, tuple[str, str]] | None = None) -> str:
    """The demo's closing report; ``skips`` (from :func:`stage_skips`) says why a stage produced nothing."""
    q = load_queries("report.sql")
    skips = skips or {}
    with engine.connect() as conn:
        stages = [(stage, rows, what, *(("skipped: " + skips[stage][0], skips[stage][1]) if stage in skips
                                        else ("ran", "")))
                  for stage, what, rows in conn.exec_driver_sql(q["stage_rows"]).all()]
        counts = conn.exec_driver_sql(q["table_counts"]).all()
        status = conn.exec_driver_sql(q["image_status"]).all()
        dups = conn.exec_driver_sql(q["duplicate_kinds"]).all()
        failed = conn.exec_driver_sql(q["failed_images"], {"limit": limit}).all()
        rejects = conn.exec_driver_sql(q["source_rejects"], {"limit": limit}).all()
        warnings = conn.exec_driver_sql(q["source_warnings"], {"limit": limit}).all()
        batches = conn.exec_driver_sql(q["batches"]).all()
    parts = [
        "== stages ==",
        tabulate(stages, headers=["stage", "rows", "of", "status", "to run it"]),
        "\n== rows per table ==",
        tabulate(counts, headers=["table", "rows"]),
        "\n== batches ==",
        tabulate(batches, headers=["batch", "creators", "last promoted"]),
        "\n== images by status ==",
        tabulate(status, headers=["status", "reason", "images"]),
        "\n== duplicates found ==",
        tabulate(dups, headers=["kind", "pairs", "across batches"]) if dups else "(none)",
        "\n== failed images (reason) ==",
        tabulate([(u, p, r, (e or "")[:70]) for u, p, r, e in failed], headers=["creator", "post", "reason", "detail"])
        if failed else "(none)",
        "\n== rejected source records ==",
        tabulate([(_short(s), rec, reason[:70]) for s, rec, reason in rejects], headers=["source", "record", "reason"])
        if rejects else "(none)",
        "\n== source warnings (records kept) ==",
        tabulate([(_short(s), rec, msg[:70]) for s, rec, msg in warnings], headers=["source", "record", "warning"])
        if warnings else "(none)",
    ]
    return "\n".join(parts)
