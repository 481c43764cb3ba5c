"""Read queries shared by the JSON API and the pages (every value bound, never formatted in)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import Connection, text

from creatorlens.queries import like_escape, load_queries

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
    min_share: float = 0.0  # a creator "has" a tag when at least this share of its images carry it
    model_version: str | None = None  # whose creator tags to read (default: the newest model)

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
        if self.tags_all:  # AND: every tag on at least min_share of the creator's images
            clauses.append(
                "(SELECT count(DISTINCT g.name) FROM creator_tags ct JOIN tags g ON g.tag_id = ct.tag_id "
                "WHERE ct.creator_id = c.creator_id AND ct.model_version = :version AND ct.share >= :min_share "
                "AND g.name = ANY(:tags_all)) = :n_tags_all"
            )
            params.update(tags_all=list(dict.fromkeys(self.tags_all)), n_tags_all=len(set(self.tags_all)))
        if self.tags_any:  # OR: at least one of them
            clauses.append(
                "EXISTS (SELECT 1 FROM creator_tags ct JOIN tags g ON g.tag_id = ct.tag_id "
                "WHERE ct.creator_id = c.creator_id AND ct.model_version = :version AND ct.share >= :min_share "
                "AND g.name = ANY(:tags_any))"
            )
            params["tags_any"] = list(self.tags_any)
        if self.tags_all or self.tags_any:
            params.update(version=self.model_version or "", min_share=self.min_share)
        if self.topics:  # LLM-written content topics, any of them (case-insensitive)
            clauses.append(
                "EXISTS (SELECT 1 FROM creator_profiles cp WHERE cp.platform = c.platform AND cp.username = c.username "
                "AND cp.status = 'ok' AND EXISTS (SELECT 1 FROM unnest(cp.topics) t WHERE lower(t) = ANY(:topics)))"
            )
            params["topics"] = [t.lower() for t in self.topics]
        if self.has_duplicates is not None:
            clauses.append(
                ("" if self.has_duplicates else "NOT ")
                + "EXISTS (SELECT 1 FROM image_duplicates d JOIN images i ON i.image_key IN (d.image_key_a, d.image_key_b) "
                "WHERE i.platform = c.platform AND i.username = c.username)"
            )
        return " AND ".join(clauses), params


def current_model_version(conn: Connection) -> str | None:
    """The newest embedding model version: whose AI tags the app shows by default."""
    return conn.exec_driver_sql(load_queries("app_search.sql")["current_model"]).scalar()


def list_creators(conn: Connection, flt: CreatorFilter, limit: int = PAGE_SIZE, offset: int = 0) -> list[dict]:
    if flt.model_version is None:
        flt.model_version = current_model_version(conn)
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
    profiles = _rows(
        conn,
        "SELECT status, error, persona, topics, profile, model, prompt_version, updated_at FROM creator_profiles "
        "WHERE platform = :p AND username = :u",
        p=platform, u=username,
    )
    creator["llm_profile"] = profiles[0] if profiles else None
    version = current_model_version(conn)
    creator["model_version"] = version
    creator["tags"] = _rows(
        conn,
        "SELECT g.name, g.category, ct.share, ct.mean_confidence, ct.images_tagged, ct.images_analysed "
        "FROM creator_tags ct JOIN tags g ON g.tag_id = ct.tag_id JOIN creators c ON c.creator_id = ct.creator_id "
        "WHERE c.platform = :p AND c.username = :u AND ct.model_version = :v "
        "ORDER BY ct.share DESC, ct.mean_confidence DESC, g.name",
        p=platform, u=username, v=version or "",
    )
    return creator


def creator_exists(conn: Connection, platform: str, username: str) -> bool:
    return conn.execute(text("SELECT EXISTS (SELECT 1 FROM creators WHERE platform = :p AND username = :u)"),
                        {"p": platform, "u": username}).scalar_one()


def similar_by_profile(conn: Connection, platform: str, username: str, k: int) -> list[dict]:
    rows = conn.exec_driver_sql(load_queries("profiles.sql")["similar_creators"],
                                {"platform": platform, "username": username, "k": k}).all()
    return [{"platform": platform, "username": r[0], "similarity": round(float(r[1]), 6), "text_source": r[2]}
            for r in rows]


def creator_mean_embedding(conn: Connection, platform: str, username: str, version: str, dim: int):
    """The mean of a creator's image vectors for one model version, as a numpy array (None: no images)."""
    value = conn.execute(text(
        f"SELECT avg(e.embedding::vector({int(dim)}))::text FROM image_embeddings e "  # noqa: S608 (int)
        "JOIN images i ON i.image_id = e.image_id "
        "WHERE i.platform = :p AND i.username = :u AND e.model_version = :v"), {"p": platform, "u": username,
                                                                            "v": version}).scalar()
    return None if value is None else np.array(value.strip("[]").split(","), dtype=np.float32)


def creators_of_images(conn: Connection, hits: list[tuple[int, float]], exclude: tuple[str, str],
                       k: int) -> list[dict]:
    """Group image hits (id, cosine distance) by creator: best similarity first, then how many hit."""
    if not hits:
        return []
    rows = conn.execute(text("SELECT image_id, platform, username FROM images WHERE image_id = ANY(:ids)"),
                        {"ids": [h[0] for h in hits]}).all()
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
    version = current_model_version(conn) or ""
    rows = _rows(
        conn,
        """
        WITH have AS (
            SELECT ct.creator_id, g.name, ct.share
            FROM creator_tags ct JOIN tags g ON g.tag_id = ct.tag_id
            WHERE ct.model_version = :v AND ct.share >= :min_share AND g.name = ANY(:wanted)
        )
        SELECT c.platform, c.username, c.category, c.followers,
               count(*) FILTER (WHERE h.name = ANY(:required)) AS required_matched,
               count(*) FILTER (WHERE h.name = ANY(:preferred)) AS preferred_matched,
               sum(h.share) AS share_sum,
               jsonb_object_agg(h.name, round(h.share::numeric, 4)) AS matched
        FROM have h JOIN creators c ON c.creator_id = h.creator_id
        GROUP BY c.creator_id
        HAVING count(*) FILTER (WHERE h.name = ANY(:required)) = :n_required
        ORDER BY preferred_matched DESC, share_sum DESC, c.username
        LIMIT :limit
        """,
        v=version, min_share=min_share, wanted=list({*required, *preferred}), required=list(set(required)),
        preferred=list(set(preferred)), n_required=len(set(required)), limit=limit,
    )
    for row in rows:
        row["share_sum"] = round(float(row["share_sum"]), 6)
    return rows


def list_tags(conn: Connection, *, prefix: str | None = None, category: str | None = None,
              order: str = "name", limit: int = 200, offset: int = 0) -> list[dict]:
    """Tags with how many images carry each now (reviewer decisions over the newest model's)."""
    order_by = {"name": "g.name", "popular": "images DESC, g.name"}[order]
    like = like_escape(prefix) + "%" if prefix else None
    return _rows(
        conn,
        f"""
        WITH eff AS (
            SELECT t.tag_id, t.image_id FROM image_tags t
            WHERE t.present AND (t.source = 'user' OR (t.source = 'ai' AND t.model_version = :v))
              AND NOT EXISTS (SELECT 1 FROM image_tags u WHERE u.image_id = t.image_id AND u.tag_id = t.tag_id
                              AND u.source = 'user' AND NOT u.present)
        )
        SELECT g.name, g.category, g.exclusive, g.origin, g.description, count(DISTINCT eff.image_id) AS images
        FROM tags g LEFT JOIN eff ON eff.tag_id = g.tag_id
        WHERE (CAST(:like AS text) IS NULL OR g.name LIKE :like
               OR ' ' || translate(g.name, '_-', '  ') LIKE '% ' || :like)
          AND (CAST(:category AS text) IS NULL OR g.category = :category)
        GROUP BY g.tag_id
        ORDER BY {order_by}
        LIMIT :limit OFFSET :offset
        """,
        v=current_model_version(conn) or "", like=like, category=category, limit=limit, offset=offset,
    )


def image_tags(conn: Connection, image_key: str) -> dict | None:
    image_id = conn.execute(text("SELECT image_id FROM images WHERE image_key = :k"), {"k": image_key}).scalar()
    if image_id is None:
        return None
    version = current_model_version(conn)
    rows = _rows(
        conn,
        "SELECT g.name, g.category, t.source, t.present, t.confidence, t.model_version, t.threshold, "
        "t.threshold_source, t.reviewer, t.updated_at FROM image_tags t JOIN tags g ON g.tag_id = t.tag_id "
        "WHERE t.image_id = :i ORDER BY g.category, g.name, t.source, t.model_version",
        i=image_id,
    )
    # What it carries now: the same rule the review module applies (a reviewer's yes or no wins).
    effective = conn.exec_driver_sql(load_queries("review.sql")["effective_tags"],
                                     {"image_id": image_id, "model_version": version or ""}).mappings().all()
    pending = _rows(
        conn,
        "SELECT q.review_id, g.name, g.category, q.reason, q.confidence, q.threshold, q.model_version "
        "FROM tag_review_queue q JOIN tags g ON g.tag_id = q.tag_id WHERE q.image_id = :i AND q.status = 'pending' "
        "ORDER BY q.confidence DESC",
        i=image_id,
    )
    return {"image_key": image_key, "model_version": version,
            "tags": [{k: v for k, v in r.items() if k != "present"} for r in effective if r["present"]],
            "rows": rows, "pending": pending}


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
    image["ocr"] = _rows(conn, "SELECT line_idx, text, confidence FROM ocr_texts WHERE image_key = :k ORDER BY line_idx",
                         k=image_key)
    image["persons"] = _rows(conn, "SELECT person_idx, x1, y1, x2, y2, score, crop_key, pose_status FROM persons "
                                   "WHERE image_key = :k ORDER BY person_idx", k=image_key)
    image["faces"] = _rows(conn, "SELECT face_idx, x1, y1, x2, y2, score, cluster_id FROM faces "
                                 "WHERE image_key = :k ORDER BY face_idx", k=image_key)
    vision = _rows(conn, "SELECT shot_type, framing, person_count, face_count, text_lines, persons_status, "
                         "faces_status, ocr_status FROM image_vision WHERE image_key = :k", k=image_key)
    image["vision"] = vision[0] if vision else None
    image["open_flag"] = conn.execute(text(
        "SELECT f.reason FROM image_flags f JOIN images i ON i.image_id = f.image_id "
        "WHERE i.image_key = :k AND f.resolved_at IS NULL"), {"k": image_key}).scalar()
    return image


def stats(conn: Connection) -> dict:
    """Progress per stage (how many of the ok images each stage has covered) and failures by reason."""
    version = current_model_version(conn)
    ok_images = conn.execute(text("SELECT count(*) FROM images WHERE status = 'ok'")).scalar_one()
    stage_counts = conn.execute(text(
        """
        SELECT
          (SELECT count(*) FROM image_vision) AS vision,
          (SELECT count(DISTINCT image_key) FROM ocr_texts) AS ocr_with_text,
          (SELECT count(*) FROM image_embeddings WHERE model_version = :v) AS embedded,
          (SELECT count(DISTINCT image_id) FROM image_tags WHERE source = 'ai' AND model_version = :v) AS tagged,
          (SELECT count(*) FROM creators) AS creators,
          (SELECT count(*) FROM creator_profiles WHERE status = 'ok') AS llm_profiles,
          (SELECT count(*) FROM profile_embeddings) AS profile_embeddings,
          (SELECT count(*) FROM tag_review_queue WHERE status = 'pending') AS review_pending,
          (SELECT count(*) FROM tag_review_queue WHERE status <> 'pending') AS review_resolved,
          (SELECT count(*) FROM tag_feedback) AS feedback,
          (SELECT count(*) FROM image_flags WHERE resolved_at IS NULL) AS open_flags
        """), {"v": version or ""}).mappings().one()
    stages = [
        {"stage": "images (download, decode, thumbnails)", "done": ok_images,
         "of": conn.execute(text("SELECT count(*) FROM images")).scalar_one()},
        {"stage": "vision (persons, pose, faces, OCR)", "done": stage_counts["vision"], "of": ok_images},
        {"stage": f"embeddings ({version or 'no model yet'})", "done": stage_counts["embedded"], "of": ok_images},
        {"stage": "zero-shot tags", "done": stage_counts["tagged"], "of": ok_images},
        {"stage": "LLM profiles", "done": stage_counts["llm_profiles"], "of": stage_counts["creators"]},
        {"stage": "profile embeddings", "done": stage_counts["profile_embeddings"], "of": stage_counts["creators"]},
        {"stage": "review queue (resolved)", "done": stage_counts["review_resolved"],
         "of": stage_counts["review_resolved"] + stage_counts["review_pending"]},
    ]
    for stage in stages:
        stage["percent"] = round(100.0 * stage["done"] / stage["of"], 1) if stage["of"] else None
    return {
        "creators": stage_counts["creators"],
        "model_version": version,
        "stages": stages,
        "review": {k: stage_counts[k] for k in ("review_pending", "review_resolved", "feedback", "open_flags")},
        "batches": _rows(
            conn,
            "SELECT b.batch_key, count(*) AS creators, max(p.promoted_at) AS last_promoted "
            "FROM creator_batches b LEFT JOIN promotions p ON p.batch_key = b.batch_key "
            "GROUP BY b.batch_key ORDER BY b.batch_key",
        ),
        "images_by_status": _rows(conn, "SELECT status, count(*) AS n FROM images GROUP BY status ORDER BY status"),
        "failures_by_reason": _rows(
            conn,
            """
            SELECT stage, reason, count(*) AS n FROM (
                SELECT 'images' AS stage, error_reason AS reason FROM images WHERE status = 'failed'
                UNION ALL SELECT 'persons', persons_reason FROM image_vision WHERE persons_status = 'failed'
                UNION ALL SELECT 'faces', faces_reason FROM image_vision WHERE faces_status = 'failed'
                UNION ALL SELECT 'ocr', ocr_reason FROM image_vision WHERE ocr_status = 'failed'
                UNION ALL SELECT 'llm_profiles', left(error, 80) FROM creator_profiles WHERE status = 'failed'
            ) f GROUP BY stage, reason ORDER BY n DESC, stage, reason
            """,
        ),
        "batch_failures": _rows(
            conn, "SELECT batch_key, count(*) AS n, max(failed_at) AS last_failed FROM batch_failures "
                  "GROUP BY batch_key ORDER BY last_failed DESC LIMIT 20"),
        "source_rejects": _rows(
            conn, "SELECT source, count(*) AS n FROM source_rejects GROUP BY source ORDER BY n DESC"
        ),
    }
