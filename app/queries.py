"""Read queries shared by the JSON API and the pages (statements in ``sql/queries/app.sql``; every
value bound, never formatted in)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np
from cachetools import TTLCache
from sqlalchemy import Connection

from creatorlens.queries import like_escape, load_queries

PAGE_SIZE = 50
QUERIES = "app.sql"
TAG_ORDERS = ("name", "popular")


def _execute(conn: Connection, name: str, **params):
    """app.sql's statement ``name`` with ``params`` (psycopg placeholders)."""
    return conn.exec_driver_sql(load_queries(QUERIES)[name], params)


def _rows(conn: Connection, name: str, **params) -> list[dict]:
    return [dict(r) for r in _execute(conn, name, **params).mappings()]


@dataclass
class CreatorFilter:
    min_followers: int | None = None
    max_followers: int | None = None
    is_business: bool | None = None
    is_verified: bool | None = None
    has_duplicates: bool | None = None
    country: str | None = None
    category: str | None = None
    tags_all: list[str] = field(default_factory=list)
    tags_any: list[str] = field(default_factory=list)
    topics: list[str] = field(default_factory=list)
    min_share: float = 0.0  # a creator "has" a tag when at least this share of its images carry it
    model_version: str | None = None  # whose creator tags to read (default: the newest model)

    def params(self) -> dict:
        """``list_creators``' parameters: None switches a filter off (an empty list too)."""
        return {
            "min_followers": self.min_followers, "max_followers": self.max_followers,
            "is_business": self.is_business, "is_verified": self.is_verified,
            "has_duplicates": self.has_duplicates,
            "country": self.country or None, "category": self.category or None,
            # AND: every tag on at least min_share of the creator's images
            "tags_all": list(dict.fromkeys(self.tags_all)) or None,
            # OR: at least one of them
            "tags_any": list(self.tags_any) or None,
            "version": self.model_version or "", "min_share": self.min_share,
            # LLM-written content topics, any of them (case-insensitive)
            "topics": [t.lower() for t in self.topics] or None,
        }


def current_model_version(conn: Connection) -> str | None:
    """The newest embedding model version: whose AI tags the app shows by default."""
    return conn.exec_driver_sql(load_queries("search.sql")["current_model"]).scalar()


def list_creators(conn: Connection, flt: CreatorFilter, limit: int = PAGE_SIZE, offset: int = 0) -> list[dict]:
    if flt.model_version is None:
        flt.model_version = current_model_version(conn)
    return _rows(conn, "list_creators", **flt.params(), limit=limit, offset=offset)


def get_creator(conn: Connection, platform: str, username: str) -> dict | None:
    who = {"platform": platform, "username": username}
    rows = _rows(conn, "creator", **who)
    if not rows:
        return None
    creator = rows[0]
    creator["images"] = _rows(conn, "creator_images", **who)
    profiles = _rows(conn, "creator_llm_profile", **who)
    creator["llm_profile"] = profiles[0] if profiles else None
    version = current_model_version(conn)
    creator["model_version"] = version
    creator["tags"] = _rows(conn, "creator_tags", **who, version=version or "")
    return creator


def creator_exists(conn: Connection, platform: str, username: str) -> bool:
    return _execute(conn, "creator_exists", platform=platform, username=username).scalar_one()


def similar_by_profile(conn: Connection, platform: str, username: str, k: int) -> list[dict]:
    rows = conn.exec_driver_sql(load_queries("profiles.sql")["similar_creators"],
                                {"platform": platform, "username": username, "k": k}).all()
    return [{"platform": platform, "username": r[0], "similarity": round(float(r[1]), 6), "text_source": r[2]}
            for r in rows]


def creator_mean_embedding(conn: Connection, platform: str, username: str, version: str, dim: int):
    """The mean of a creator's image vectors for one model version (``dim`` dims), as a numpy array
    (None: no images)."""
    value = _execute(conn, "creator_mean_embedding", platform=platform, username=username,
                     version=version).scalar()
    if value is None:
        return None
    mean = np.array(value.strip("[]").split(","), dtype=np.float32)
    if mean.shape[0] != dim:
        raise ValueError(f"model version {version!r} has {dim} dims, its stored vectors {mean.shape[0]}")
    return mean


def creators_of_images(conn: Connection, hits: list[tuple[int, float]], exclude: tuple[str, str],
                       k: int) -> list[dict]:
    """Group image hits (id, cosine distance) by creator: best similarity first, then how many hit."""
    if not hits:
        return []
    rows = _execute(conn, "image_owners", ids=[h[0] for h in hits]).all()
    owner = {r[0]: (r[1], r[2]) for r in rows}
    grouped: dict[tuple[str, str], list[float]] = {}
    for image_id, distance in hits:
        who = owner.get(image_id)
        if who is not None and who != exclude:
            grouped.setdefault(who, []).append(1.0 - distance)
    ranked = sorted(grouped.items(), key=lambda kv: (-max(kv[1]), -len(kv[1]), kv[0]))[:k]
    return [{"platform": p, "username": u, "similarity": round(max(sims), 6), "images_matched": len(sims)}
            for (p, u), sims in ranked]


def match_brief(conn: Connection, required: list[str], preferred: list[str], min_share: float,
                limit: int) -> list[dict]:
    """Creators carrying every required tag (share >= min_share), ranked by how many preferred tags
    they also carry, then by the summed share of all matched tags."""
    rows = _rows(
        conn, "match_brief",
        version=current_model_version(conn) or "", min_share=min_share, wanted=list({*required, *preferred}),
        required=list(set(required)), preferred=list(set(preferred)), n_required=len(set(required)), limit=limit,
    )
    for row in rows:
        row["share_sum"] = round(float(row["share_sum"]), 6)
    return rows


def list_tags(conn: Connection, *, prefix: str | None = None, category: str | None = None,
              order: str = "name", limit: int = 200, offset: int = 0) -> list[dict]:
    """Tags with how many images carry each now (reviewer decisions over the newest model's)."""
    if order not in TAG_ORDERS:
        raise ValueError(f"order must be one of {TAG_ORDERS}, got {order!r}")
    like = like_escape(prefix) + "%" if prefix else None
    return _rows(conn, "list_tags", version=current_model_version(conn) or "", like=like, category=category,
                 order=order, limit=limit, offset=offset)


def tag_names(conn: Connection, limit: int = 500) -> list[dict]:
    """Tag names and categories (the pages' autocomplete list): no counts, so no scan of the tag rows."""
    return _rows(conn, "tag_names", limit=limit)


class TagCounts:
    """:func:`list_tags` answers, kept ``ttl_s`` seconds (cachetools' TTLCache under a lock).

    Counting every image's effective tags is the costliest read the app serves (25 ms on 5,000
    images, 80 ms once PostgreSQL switches the prepared statement to its generic plan), and the
    counts change only when a reviewer writes or the pipeline promotes a batch. This app's own
    writes clear the cache as they commit (``app.deps.get_conn``), so a reviewer sees their change
    at once; a promotion by the pipeline shows within ``ttl_s``.
    """

    def __init__(self, ttl_s: float = 10.0, maxsize: int = 512) -> None:
        self._cache: TTLCache = TTLCache(maxsize=maxsize, ttl=ttl_s)
        self._lock = threading.Lock()

    def get(self, conn: Connection, **kwargs) -> list[dict]:
        key = tuple(sorted(kwargs.items()))
        with self._lock:
            found = self._cache.get(key)
        if found is None:
            found = list_tags(conn, **kwargs)
            with self._lock:
                self._cache[key] = found
        return [dict(row) for row in found]  # callers may change their copy

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()


def image_tags(conn: Connection, image_key: str) -> dict | None:
    review = load_queries("review.sql")
    image_id = conn.exec_driver_sql(review["image_id"], {"image_key": image_key}).scalar()
    if image_id is None:
        return None
    version = current_model_version(conn)
    rows = _rows(conn, "image_tag_rows", image_id=image_id)
    # What it carries now: the review module's statement over effective_image_tags (a reviewer's yes or no wins).
    effective = conn.exec_driver_sql(review["effective_tags"],
                                     {"image_id": image_id, "model_version": version or ""}).mappings().all()
    pending = _rows(conn, "image_pending_reviews", image_id=image_id)
    return {"image_key": image_key, "model_version": version,
            "tags": [{k: v for k, v in r.items() if k != "present"} for r in effective if r["present"]],
            "rows": rows, "pending": pending}


def list_images(conn: Connection, page: int = 1, username: str | None = None) -> list[dict]:
    return _rows(conn, "list_images", username=username, limit=PAGE_SIZE, offset=(max(page, 1) - 1) * PAGE_SIZE)


def get_image(conn: Connection, image_key: str) -> dict | None:
    rows = _rows(conn, "image", image_key=image_key)
    if not rows:
        return None
    image = rows[0]
    image["duplicates"] = _rows(conn, "image_duplicates", image_key=image_key)
    image["ocr"] = _rows(conn, "image_ocr", image_key=image_key)
    image["persons"] = _rows(conn, "image_persons", image_key=image_key)
    image["faces"] = _rows(conn, "image_faces", image_key=image_key)
    vision = _rows(conn, "image_vision", image_key=image_key)
    image["vision"] = vision[0] if vision else None
    image["open_flag"] = _execute(conn, "image_open_flag", image_key=image_key).scalar()
    return image


def stats(conn: Connection) -> dict:
    """Progress per stage (how many of the ok images each stage has covered) and failures by reason."""
    version = current_model_version(conn)
    counts = _execute(conn, "stage_counts", version=version or "").mappings().one()
    ok_images = counts["ok_images"]
    stages = [
        {"stage": "images (download, decode, thumbnails)", "done": ok_images, "of": counts["images"]},
        {"stage": "vision (persons, pose, faces, OCR)", "done": counts["vision"], "of": ok_images},
        {"stage": f"embeddings ({version or 'no model yet'})", "done": counts["embedded"], "of": ok_images},
        {"stage": "zero-shot tags", "done": counts["tagged"], "of": ok_images},
        {"stage": "LLM profiles", "done": counts["llm_profiles"], "of": counts["creators"]},
        {"stage": "profile embeddings", "done": counts["profile_embeddings"], "of": counts["creators"]},
        {"stage": "review queue (resolved)", "done": counts["review_resolved"],
         "of": counts["review_resolved"] + counts["review_pending"]},
    ]
    for stage in stages:
        stage["percent"] = round(100.0 * stage["done"] / stage["of"], 1) if stage["of"] else None
    return {
        "creators": counts["creators"],
        "model_version": version,
        "stages": stages,
        "review": {k: counts[k] for k in ("review_pending", "review_resolved", "feedback", "open_flags")},
        "batches": [dict(r) for r in conn.exec_driver_sql(load_queries("report.sql")["batches"]).mappings()],
        "images_by_status": _rows(conn, "images_by_status"),
        "failures_by_reason": _rows(conn, "failures_by_reason"),
        "batch_failures": _rows(conn, "batch_failures"),
        "source_rejects": _rows(conn, "source_rejects_by_source"),
    }
