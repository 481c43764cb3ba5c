-- Hybrid search for the app (app.search): a keyword ranking and a semantic ranking of images,
-- fused in Python with reciprocal rank fusion.
--
-- {filters} is composed in by app.search from fixed SQL below (no data is ever formatted in; every
-- value is a bound parameter). Statements run unprepared, so each plan sees the actual values.
-- {dim} is an integer from embedding_models (psycopg.sql.Literal), matching the per-version
-- partial HNSW index expression embedding::halfvec(dim).
--
-- The filters come in two spellings that must say the same thing:
-- * `image_filters`, one predicate with every filter switched by its parameter (NULL = off). The
--   `param IS NULL OR EXISTS (...)` form keeps each EXISTS a per-row check, which is what an ordered
--   scan wants: the HNSW scan and the ranked keyword candidates test rows in rank order and stop at
--   the limit (bench/search.py: a rare tag on 1 in 100 images costs 100+ ms this way on the HNSW
--   scan, which is why `semantic_exact` exists);
-- * `filter_*`, one fragment per filter, ANDed by app.search for the filters in use only. Plain
--   EXISTS at the top level become semi-joins, so the planner can start from the most selective
--   filter (a tag's rows, a category's creators) instead of from the vector index. The category
--   is matched with ILIKE on the name with LIKE's metacharacters escaped (category_like), which
--   is lower(category) = lower(name) by definition, because the planner estimates ILIKE from the
--   column's statistics and cannot estimate lower(category): guessing 0.5 % instead of 8 %, it
--   started from the category's images when the tag's were far fewer.

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

-- name: filter_ok
i.status = 'ok'

-- name: filter_category
EXISTS (SELECT 1 FROM creators c
        WHERE c.platform = i.platform AND c.username = i.username AND c.category ILIKE %(category_like)s)

-- name: filter_tag
EXISTS (SELECT 1 FROM image_tags t
        WHERE t.image_id = i.image_id AND t.tag_id = %(tag_id)s AND t.present
          AND (t.source = 'user' OR (t.source = 'ai' AND t.model_version = %(model_version)s)))
AND NOT EXISTS (SELECT 1 FROM image_tags u
                WHERE u.image_id = i.image_id AND u.tag_id = %(tag_id)s AND u.source = 'user' AND NOT u.present)

-- name: filter_dates
EXISTS (SELECT 1 FROM posts p
        WHERE p.platform = i.platform AND p.post_id = i.post_id
          AND (%(date_from)s::timestamptz IS NULL OR p.taken_at >= %(date_from)s)
          AND (%(date_to)s::timestamptz IS NULL OR p.taken_at < %(date_to)s))

-- name: filter_hide_duplicates
NOT EXISTS (SELECT 1 FROM image_duplicates d WHERE d.image_key_b = i.image_key)

-- name: current_model
SELECT model_version, dim FROM embedding_models ORDER BY created_at DESC, model_version LIMIT 1;

-- name: search_settings
-- For the semantic transaction only. random_page_cost 1.1 (the usual SSD value, and the searched
-- tables are meant to stay in memory): at the default 4 the planner would rather scan every row of
-- image_embeddings than look up the few hundred a rare tag filters down to (semantic_exact: 22 ms ->
-- 10 ms in bench/search.py).
SELECT set_config('hnsw.ef_search', %(ef_search)s, true),
       set_config('hnsw.iterative_scan', 'relaxed_order', true),
       set_config('hnsw.max_scan_tuples', %(max_scan_tuples)s, true),
       set_config('random_page_cost', '1.1', true);

-- name: keyword
-- One row per matching image: score = sum over fields of weight x ts_rank (a matching tag counts as
-- 0.1 x its confidence; a reviewer's tag as 0.1), and which fields matched. Each field keeps at most
-- per_field candidates, best first, so a very common word stays cheap; the filters then apply to
-- those candidates, best score first, until k pass.
-- Shape (bench/search.py, EXPLAIN ANALYZE on 100,000 images): the tsquery is written inline, not
-- read from a CTE, so the planner folds it to a constant and estimates each field's matches from
-- the tsvector statistics; each field is ranked on its own table first (`ORDER BY r DESC OFFSET 0`:
-- the OFFSET keeps the ranked subquery whole) and joined to images by index in rank order, so the
-- LIMIT stops the join after per_field rows. A word in 28 in 100 captions: 143 ms -> 30 ms (it
-- used to hash-join every matching post with all images, images having no (platform, post_id) index;
-- the join here goes through image_key, the natural key "<platform>:<post_id>"). A matching tag on a
-- fifth of the images: the reviewer veto is checked in rank order (OFFSET 0 keeps it a per-row index
-- probe), no longer for every tagged image. A query matching several tag names keeps the best
-- per_field tag rows, so an image tagged with two of them takes two places.
WITH ocr AS (
    SELECT i.image_id, o.r
    FROM (SELECT o.image_key, max(ts_rank(o.tsv, websearch_to_tsquery('simple', %(query)s))) AS r
          FROM ocr_texts o
          WHERE o.tsv @@ websearch_to_tsquery('simple', %(query)s)
          GROUP BY o.image_key
          ORDER BY r DESC LIMIT %(per_field)s) o
    JOIN images i ON i.image_key = o.image_key),
caption AS (
    SELECT i.image_id, p.r
    FROM (SELECT p.platform, p.post_id, ts_rank(p.caption_tsv, websearch_to_tsquery('simple', %(query)s)) AS r
          FROM posts p
          WHERE p.caption_tsv @@ websearch_to_tsquery('simple', %(query)s)
          ORDER BY r DESC OFFSET 0) p
    JOIN images i ON i.image_key = p.platform || ':' || p.post_id
    ORDER BY p.r DESC LIMIT %(per_field)s),
tag AS (
    SELECT image_id, max(r) AS r
    FROM (SELECT t.image_id, t.r
          FROM (SELECT t.image_id, t.tag_id, 0.1 * CASE WHEN t.source = 'user' THEN 1.0 ELSE t.confidence END AS r
                FROM tags g JOIN image_tags t ON t.tag_id = g.tag_id
                WHERE to_tsvector('simple', replace(g.name, '_', ' ')) @@ websearch_to_tsquery('simple', %(query)s)
                  AND t.present AND (t.source = 'user' OR (t.source = 'ai' AND t.model_version = %(model_version)s))
                ORDER BY r DESC OFFSET 0) t
          WHERE NOT EXISTS (SELECT 1 FROM image_tags u
                            WHERE u.image_id = t.image_id AND u.tag_id = t.tag_id AND u.source = 'user'
                              AND NOT u.present
                            OFFSET 0)
          ORDER BY t.r DESC LIMIT %(per_field)s) t
    GROUP BY image_id),
bio AS (
    SELECT i.image_id, c.r
    FROM (SELECT c.platform, c.username, 0.5 * ts_rank(c.profile_tsv, websearch_to_tsquery('simple', %(query)s)) AS r
          FROM creators c
          WHERE c.profile_tsv @@ websearch_to_tsquery('simple', %(query)s)
          ORDER BY r DESC OFFSET 0) c
    JOIN images i ON i.platform = c.platform AND i.username = c.username
    ORDER BY c.r DESC LIMIT %(per_field)s),
llm AS (
    SELECT i.image_id, cp.r
    FROM (SELECT cp.platform, cp.username, 0.5 * ts_rank(cp.profile_tsv, websearch_to_tsquery('simple', %(query)s)) AS r
          FROM creator_profiles cp
          WHERE cp.status = 'ok' AND cp.profile_tsv @@ websearch_to_tsquery('simple', %(query)s)
          ORDER BY r DESC OFFSET 0) cp
    JOIN images i ON i.platform = cp.platform AND i.username = cp.username
    ORDER BY cp.r DESC LIMIT %(per_field)s),
matches AS (
    SELECT image_id, sum(r) AS score, array_agg(DISTINCT field ORDER BY field) AS fields
    FROM (SELECT image_id, 'ocr' AS field, r FROM ocr
          UNION ALL SELECT image_id, 'caption', r FROM caption
          UNION ALL SELECT image_id, 'tag', r FROM tag
          UNION ALL SELECT image_id, 'bio', r FROM bio
          UNION ALL SELECT image_id, 'llm_profile', r FROM llm) m
    GROUP BY image_id
    ORDER BY score DESC, image_id OFFSET 0)
SELECT m.image_id, m.score, m.fields
FROM matches m JOIN images i ON i.image_id = m.image_id
WHERE {filters}
ORDER BY m.score DESC, m.image_id
LIMIT %(k)s;

-- name: semantic
WITH hits AS MATERIALIZED (
    SELECT e.image_id, e.embedding::halfvec({dim}) <=> %(vector)s::halfvec({dim}) AS distance
    FROM image_embeddings e JOIN images i ON i.image_id = e.image_id
    WHERE e.model_version = %(model_version)s AND {filters}
    ORDER BY e.embedding::halfvec({dim}) <=> %(vector)s::halfvec({dim})
    LIMIT %(k)s)
SELECT image_id, distance FROM hits ORDER BY distance, image_id;

-- name: semantic_exact
-- The same ranking without the HNSW index, for filters that leave few images (by the planner's
-- estimate of `filtered_images`) or that few images near the query pass (the index scan came back
-- short): exact distances to every image that passes the filters (`filter_*` fragments, so the
-- planner starts from the most selective one), best k. The OFFSET 0 subquery has no ORDER BY, so
-- the vector index is of no use to it. bench/search.py, 100,000 images, a tag on 1 in 100 of them:
-- p50 13 ms, against 81 ms for the index scan with a 20,000-tuple budget (which also found only
-- about half of the true nearest 50).
WITH hits AS MATERIALIZED (
    SELECT image_id, distance
    FROM (SELECT e.image_id, e.embedding::halfvec({dim}) <=> %(vector)s::halfvec({dim}) AS distance
          FROM image_embeddings e JOIN images i ON i.image_id = e.image_id
          WHERE e.model_version = %(model_version)s AND {filters}
          OFFSET 0) d
    ORDER BY distance
    LIMIT %(k)s)
SELECT image_id, distance FROM hits ORDER BY distance, image_id;

-- name: filtered_images
-- EXPLAINed only, for the planner's estimate of how many images pass the filters (`filter_*`).
SELECT 1 FROM images i WHERE {filters};

-- name: describe
SELECT i.image_id, i.image_key, i.platform, i.username, i.thumb_key, p.taken_at
FROM images i LEFT JOIN posts p ON p.platform = i.platform AND p.post_id = i.post_id
WHERE i.image_id = ANY(%(ids)s);
