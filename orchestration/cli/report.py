"""Plain-text warehouse summary: rows per table, duplicates, failures with their reasons."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import Engine
from tabulate import tabulate

from creatorlens.queries import load_queries


def _short(path: str) -> str:
    return Path(path).name if "/" in path else path


def warehouse_summary(engine: Engine, *, limit: int = 20) -> str:
    q = load_queries("report.sql")
    with engine.connect() as conn:
        counts = conn.exec_driver_sql(q["table_counts"]).all()
        status = conn.exec_driver_sql(q["image_status"]).all()
        dups = conn.exec_driver_sql(q["duplicate_kinds"]).all()
        failed = conn.exec_driver_sql(q["failed_images"], {"limit": limit}).all()
        rejects = conn.exec_driver_sql(q["source_rejects"], {"limit": limit}).all()
        batches = conn.exec_driver_sql(q["batches"]).all()
    parts = [
        "== rows per table ==",
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
    ]
    return "\n".join(parts)
