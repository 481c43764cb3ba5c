"""Tag history: per creator and tag, share and mean confidence per analysis (model version + month).

:func:`record_tag_history` runs inside the tagging promotion's transaction (``store.promote_tags``),
after the batch's creator tags are staged: the analysis is written to ``creator_tag_history`` and a
share that moved more than the threshold since the creator's previous analysis is listed in
``tag_history_changes`` for a reviewer. :func:`tag_history` reads a creator's series for the app
(creator page chart, ``GET /api/creators/{username}/tag-history``). No Dagster here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

from creatorlens.queries import load_queries

QUERIES = "tag_history.sql"
DEFAULT_CHANGE = 0.2


def record_tag_history(cur: psycopg.Cursor, params: dict[str, Any], *, change_threshold: float = DEFAULT_CHANGE,
                       analysed_at: datetime | None = None) -> tuple[int, int]:
    """(history rows written, changes listed) for the staged batch; ``params`` are the promotion's."""
    q = load_queries(QUERIES)
    args = {**params, "analysed_at": analysed_at, "threshold": change_threshold}
    cur.execute(q["upsert_history"], args)
    written = cur.rowcount
    cur.execute(q["record_changes"], args)
    return written, cur.rowcount


def tag_history(conn: psycopg.Connection, platform: str, username: str, *, top: int = 6) -> dict[str, Any]:
    """A creator's analyses (oldest first), the series of its ``top`` tags (by their highest share), every
    tag's series, and the listed changes."""
    q = load_queries(QUERIES)
    with conn.transaction():
        rows = conn.execute(q["history_for"], {"platform": platform, "username": username}).fetchall()
        changes = conn.execute(q["changes_for"], {"platform": platform, "username": username}).fetchall()
    first_seen: dict[tuple[str, str], datetime] = {}
    for _, _, version, month, *_, recorded in rows:
        key = (version, month.isoformat())
        first_seen[key] = min(first_seen.get(key, recorded), recorded)
    analyses = sorted(first_seen, key=lambda k: (k[1], first_seen[k]))
    index = {k: i for i, k in enumerate(analyses)}
    series: dict[str, dict[str, Any]] = {}
    for name, category, version, month, share, conf, n, _ in rows:
        s = series.setdefault(name, {"tag": name, "category": category, "points": []})
        s["points"].append({"analysis": index[(version, month.isoformat())], "model_version": version,
                            "month": month.isoformat(), "share": round(float(share), 4),
                            "mean_confidence": None if conf is None else round(float(conf), 4),
                            "images_analysed": n})
    for s in series.values():
        s["points"].sort(key=lambda p: p["analysis"])
    ranked = sorted(series.values(), key=lambda s: (-max(p["share"] for p in s["points"]), s["tag"]))
    return {
        "analyses": [{"index": i, "model_version": v, "month": m} for i, (v, m) in enumerate(analyses)],
        "series": ranked,
        "chart": ranked[:top],
        "changes": [{"change_id": c[0], "tag": c[1], "from": {"model_version": c[2], "month": c[3].isoformat()},
                     "to": {"model_version": c[4], "month": c[5].isoformat()}, "share_before": round(float(c[6]), 4),
                     "share_after": round(float(c[7]), 4), "status": c[8]} for c in changes],
    }
