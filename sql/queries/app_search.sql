-- Hybrid search for the app (app.search): a keyword ranking and a semantic ranking of images,
-- fused in Python with reciprocal rank fusion.
--
-- {filters} is the fixed predicate `image_filters` below, composed in by app.search (no data is
-- ever formatted in; every value is a bound parameter). A NULL parameter switches its filter off;
-- statements run unprepared, so each plan sees the actual values and folds the switched-off ones away.
-- {dim} is an integer from embedding_models (psycopg.sql.Literal), matching the per-version
-- partial HNSW index expression embedding::halfvec(dim).

-- name: image_filters
i.status = 'ok'
AND (%(category)s::text IS NULL OR EXISTS (
        SELECT 1 FROM creators c
        WHERE c.platform = i.platform AND c.username = i.username AND lower(c.category) = lower(%(category)s)))
AND (%(tag_id)s::int IS NULL OR (
        EXISTS (SELECT 1 FROM image_tags t
                WHERE t.image_id = i.image_id AND t.tag_id = %(tag_id)s AND t.present
                  AND (t.source = 'user' OR (t.source = 'ai' AND t.model_version = %(model_version)s)))
        AND NOT EXISTS (SELECT 1 FROM image_tags u
                        WHERE u.image_id = i.image_id AND u.tag_id = %(tag_id)s AND u.source = 'user'
                          AND NOT u.present)))
AND (%(date_from)s::timestamptz IS NULL AND %(date_to)s::timestamptz IS NULL OR EXISTS (
        SELECT 1 FROM posts p
        WHERE p.platform = i.platform AND p.post_id = i.post_id
          AND (%(date_from)s::timestamptz IS NULL OR p.taken_at >= %(date_from)s)
          AND (%(date_to)s::timestamptz IS NULL OR p.taken_at < %(date_to)s)))
AND (NOT %(hide_duplicates)s OR NOT EXISTS (SELECT 1 FROM image_duplicates d WHERE d.image_key_b = i.image_key))

-- name: current_model
SELECT model_version, dim FROM embedding_models ORDER BY created_at DESC, model_version LIMIT 1;

-- name: model_dim
SELECT dim FROM embedding_models WHERE model_version = %(model_version)s;

-- name: tag_id
SELECT tag_id FROM tags WHERE name = %(tag)s;

-- name: search_settings
SELECT set_config('hnsw.ef_search', %(ef_search)s, true),
       set_config('hnsw.iterative_scan', 'relaxed_order', true),
       set_config('hnsw.max_scan_tuples', %(max_scan_tuples)s, true);

-- name: keyword
-- One row per matching image: score = sum over fields of weight x ts_rank (a matching tag counts as
-- 0.1 x its confidence; a reviewer's tag as 0.1), and which fields matched. Each field keeps at most
-- %(per_field)s candidates, best first, so a very common word stays cheap.
WITH q AS (SELECT websearch_to_tsquery('simple', %(query)s) AS tsq),
ocr AS (
    SELECT i.image_id, max(ts_rank(o.tsv, q.tsq)) AS r
    FROM q, ocr_texts o JOIN images i ON i.image_key = o.image_key
    WHERE o.tsv @@ q.tsq
    GROUP BY i.image_id ORDER BY r DESC LIMIT %(per_field)s),
caption AS (
    SELECT i.image_id, ts_rank(p.caption_tsv, q.tsq) AS r
    FROM q, posts p JOIN images i ON i.platform = p.platform AND i.post_id = p.post_id
    WHERE p.caption_tsv @@ q.tsq
    ORDER BY r DESC LIMIT %(per_field)s),
tag AS (
    SELECT t.image_id, max(0.1 * CASE WHEN t.source = 'user' THEN 1.0 ELSE t.confidence END) AS r
    FROM q, tags g JOIN image_tags t ON t.tag_id = g.tag_id
    WHERE to_tsvector('simple', replace(g.name, '_', ' ')) @@ q.tsq
      AND t.present AND (t.source = 'user' OR (t.source = 'ai' AND t.model_version = %(model_version)s))
      AND NOT EXISTS (SELECT 1 FROM image_tags u
                      WHERE u.image_id = t.image_id AND u.tag_id = t.tag_id AND u.source = 'user' AND NOT u.present)
    GROUP BY t.image_id ORDER BY r DESC LIMIT %(per_field)s),
bio AS (
    SELECT i.image_id, 0.5 * ts_rank(c.profile_tsv, q.tsq) AS r
    FROM q, creators c JOIN images i ON i.platform = c.platform AND i.username = c.username
    WHERE c.profile_tsv @@ q.tsq
    ORDER BY r DESC LIMIT %(per_field)s),
llm AS (
    SELECT i.image_id, 0.5 * ts_rank(cp.profile_tsv, q.tsq) AS r
    FROM q, creator_profiles cp JOIN images i ON i.platform = cp.platform AND i.username = cp.username
    WHERE cp.status = 'ok' AND cp.profile_tsv @@ q.tsq
    ORDER BY r DESC LIMIT %(per_field)s),
matches AS (
    SELECT image_id, 'ocr' AS field, r FROM ocr
    UNION ALL SELECT image_id, 'caption', r FROM caption
    UNION ALL SELECT image_id, 'tag', r FROM tag
    UNION ALL SELECT image_id, 'bio', r FROM bio
    UNION ALL SELECT image_id, 'llm_profile', r FROM llm)
SELECT m.image_id, sum(m.r) AS score, array_agg(DISTINCT m.field ORDER BY m.field) AS fields
FROM matches m JOIN images i ON i.image_id = m.image_id
WHERE {filters}
GROUP BY m.image_id
ORDER BY score DESC, m.image_id
LIMIT %(k)s;

-- name: semantic
WITH hits AS MATERIALIZED (
    SELECT e.image_id, e.embedding::halfvec({dim}) <=> %(vector)s::halfvec({dim}) AS distance
    FROM image_embeddings e JOIN images i ON i.image_id = e.image_id
    WHERE e.model_version = %(model_version)s AND {filters}
    ORDER BY e.embedding::halfvec({dim}) <=> %(vector)s::halfvec({dim})
    LIMIT %(k)s)
SELECT image_id, distance FROM hits ORDER BY distance, image_id;

-- name: stored_embedding
SELECT e.embedding FROM image_embeddings e JOIN images i ON i.image_id = e.image_id
WHERE i.image_key = %(image_key)s AND e.model_version = %(model_version)s;

-- name: describe
SELECT i.image_id, i.image_key, i.platform, i.username, i.thumb_key, p.taken_at
FROM images i LEFT JOIN posts p ON p.platform = i.platform AND p.post_id = i.post_id
WHERE i.image_id = ANY(%(ids)s);
