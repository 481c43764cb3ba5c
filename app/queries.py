"""Read queries shared by the JSON API and the pages (every value bound, never formatted in)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Connection, text

PAGE_SIZE = 50


def _rows(conn: Connection, sql: str, **params) -> list[dict]:
    return [dict(r._mapping) for r in conn.execute(text(sql), params)]


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

    def where(self) -> tuple[str, dict]:
        clauses, params = ["TRUE"], {}
        if self.min_followers is not None:
            clauses.append("c.followers >= :min_f")
            params["min_f"] = self.min_followers
        if self.max_followers is not None:
            clauses.append("c.followers <= :max_f")
            params["max_f"] = self.max_followers
        for name in ("is_business", "is_verified"):
            if getattr(self, name) is not None:
                clauses.append(f"c.{name} = :{name}")
                params[name] = getattr(self, name)
        if self.country:
            clauses.append("lower(c.country) = lower(:country)")
            params["country"] = self.country
        if self.category:
            clauses.append("lower(c.category) = lower(:category)")
            params["category"] = self.category
        if self.has_duplicates is not None:
            clauses.append(
                ("" if self.has_duplicates else "NOT ")
                + "EXISTS (SELECT 1 FROM image_duplicates d JOIN images i ON i.image_key IN (d.image_key_a, d.image_key_b) "
                "WHERE i.platform = c.platform AND i.username = c.username)"
            )
        return " AND ".join(clauses), params


def list_creators(conn: Connection, flt: CreatorFilter, limit: int = PAGE_SIZE, offset: int = 0) -> list[dict]:
    where, params = flt.where()
    return _rows(
        conn,
        f"""
        SELECT c.platform, c.username, c.full_name, c.category, c.country, c.followers, c.is_business,
               c.is_verified, c.batch_key,
               (SELECT count(*) FROM images i WHERE i.platform = c.platform AND i.username = c.username
                AND i.status = 'ok') AS images
        FROM creators c WHERE {where}
        ORDER BY c.followers DESC NULLS LAST, c.username
        LIMIT :limit OFFSET :offset
        """,
        **params, limit=limit, offset=offset,
    )


def get_creator(conn: Connection, platform: str, username: str) -> dict | None:
    rows = _rows(
        conn,
        "SELECT platform, username, full_name, bio, category, country, followers, is_business, is_verified, "
        "batch_key, updated_at FROM creators WHERE platform = :p AND username = :u",
        p=platform, u=username,
    )
    if not rows:
        return None
    creator = rows[0]
    creator["images"] = _rows(
        conn,
        "SELECT image_key, status, error_reason, thumb_key, width, height, rank FROM images "
        "WHERE platform = :p AND username = :u ORDER BY rank",
        p=platform, u=username,
    )
    return creator


def list_images(conn: Connection, page: int = 1, username: str | None = None) -> list[dict]:
    return _rows(
        conn,
        "SELECT image_key, platform, username, status, error_reason, thumb_key, width, height FROM images "
        "WHERE (CAST(:u AS text) IS NULL OR username = :u) ORDER BY image_id LIMIT :limit OFFSET :offset",
        u=username, limit=PAGE_SIZE, offset=(max(page, 1) - 1) * PAGE_SIZE,
    )


def get_image(conn: Connection, image_key: str) -> dict | None:
    rows = _rows(
        conn,
        "SELECT i.image_key, i.platform, i.post_id, i.username, i.status, i.error_reason, i.error, i.blob_key, "
        "i.thumb_key, i.width, i.height, i.sha256, p.caption, p.taken_at FROM images i "
        "LEFT JOIN posts p ON p.platform = i.platform AND p.post_id = i.post_id WHERE i.image_key = :k",
        k=image_key,
    )
    if not rows:
        return None
    image = rows[0]
    image["duplicates"] = _rows(
        conn,
        "SELECT CASE WHEN image_key_a = :k THEN image_key_b ELSE image_key_a END AS image_key, distance, kind "
        "FROM image_duplicates WHERE :k IN (image_key_a, image_key_b) ORDER BY distance",
        k=image_key,
    )
    return image


def stats(conn: Connection) -> dict:
    return {
        "creators": conn.execute(text("SELECT count(*) FROM creators")).scalar_one(),
        "batches": _rows(
            conn,
            "SELECT b.batch_key, count(*) AS creators, max(p.promoted_at) AS last_promoted "
            "FROM creator_batches b LEFT JOIN promotions p ON p.batch_key = b.batch_key "
            "GROUP BY b.batch_key ORDER BY b.batch_key",
        ),
        "images_by_status": _rows(conn, "SELECT status, count(*) AS n FROM images GROUP BY status ORDER BY status"),
        "failures_by_reason": _rows(
            conn,
            "SELECT error_reason AS reason, count(*) AS n FROM images WHERE status = 'failed' "
            "GROUP BY error_reason ORDER BY n DESC",
        ),
        "source_rejects": _rows(
            conn, "SELECT source, count(*) AS n FROM source_rejects GROUP BY source ORDER BY n DESC"
        ),
    }
