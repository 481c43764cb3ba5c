-- Hybrid search for the app (app.search): the keyword ranking of images, fused in Python by
-- reciprocal rank fusion with the semantic ranking (assets.tagging.search, sql/queries/search.sql).
--
-- {filters} is search.sql's `image_filters`, composed in by assets.tagging.search.VectorSearch (no
-- data is ever formatted in; every value is a bound parameter). The statement runs unprepared, so
-- each plan sees the actual values.

-- name: keyword_settings
-- For the keyword half's transaction only (app.search.SearchTuning.gin_fuzzy_search_limit): a GIN
-- scan matching more rows than this returns a random subset of about this many.
SELECT set_config('gin_fuzzy_search_limit', %(limit)s, true);

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
-- the join here goes through image_key, the natural key "<platform>:<post_id>"). The tag field reads
-- effective_image_tags (sql/008_effective_tags.sql): one row per image and tag, a reviewer's row in
-- place of the model's, a reviewer's "no" not present. It judges a narrow set of candidates per
-- matching tag (the tag's reviewer rows, its best model rows by confidence) instead of all the
-- tag's rows (bench/search.py, a tag on 148,000 of 500,000 images: the keyword query 103 -> 30 ms, when
-- it sorted every row of the tag). A query matching several
-- tag names keeps the best per_field tag rows, so an image tagged with two of them takes two places.
-- The candidates (the final FROM) are `matches`, or with a tag filter on few images `keyword_tagged_candidates`.
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
    FROM (SELECT t.image_id, 0.1 * CASE WHEN t.source = 'user' THEN 1.0 ELSE t.confidence END AS r
          FROM tags g
          CROSS JOIN LATERAL (
              -- Candidates, which effective_image_tags then judges: the tag's reviewer rows, and its
              -- model rows best confidence first (image_tags_tag_rank_idx, read in order), as many as
              -- per_field plus the tag's reviewer rows, because a reviewer's decision can displace
              -- at most one model row each. The true top per_field are among them.
              SELECT u.image_id FROM image_tags u WHERE u.tag_id = g.tag_id AND u.source = 'user'
              UNION
              (SELECT a.image_id FROM image_tags a
               WHERE a.tag_id = g.tag_id AND a.model_version = %(model_version)s AND a.source = 'ai' AND a.present
               ORDER BY a.confidence DESC
               LIMIT %(per_field)s + (SELECT count(*) FROM image_tags u
                                      WHERE u.tag_id = g.tag_id AND u.source = 'user'))) c
          JOIN effective_image_tags(%(model_version)s) t ON t.image_id = c.image_id AND t.tag_id = g.tag_id
          WHERE to_tsvector('simple', replace(g.name, '_', ' ')) @@ websearch_to_tsquery('simple', %(query)s)
            AND t.present
          ORDER BY r DESC LIMIT %(per_field)s) t
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
FROM {candidates} m JOIN images i ON i.image_id = m.image_id
WHERE {filters}
ORDER BY m.score DESC, m.image_id
LIMIT %(k)s;

-- name: keyword_tagged_candidates
-- The keyword candidates with a tag filter whose tag is on few images (app.search.SearchTuning
-- .keyword_tag_set_below, by the planner's estimate of the tag's rows): only those carrying the tag
-- (search.sql ids_tag less ids_tag_vetoed, hashed once), best first, before any images row is
-- read. The per-row filters still run on the survivors. bench/search.py, 500,000 images, a tag on
-- 6,362 of them: the keyword half p95 55 -> 41 ms, where each of ~2,000 candidates was looked up in
-- images and in image_tags and almost none passed. A common tag stays per row: hashing 148,000 ids
-- costs more than checking the candidates until k pass.
(SELECT * FROM matches m
 WHERE m.image_id IN (SELECT image_id FROM ({tag_set}) s)
 ORDER BY m.score DESC, m.image_id OFFSET 0)
