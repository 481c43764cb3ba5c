-- Promotion of one batch's embeddings and tags for ONE model version, inside ONE transaction
-- opened by creatorlens.tag_promotion.promote_tags(). Staging tables are dropped at commit.
-- Everything is keyed on (natural key, model_version): other model versions are never touched,
-- and reviewer rows (source 'user') and resolved review items are never removed or reopened.

-- name: lock_batch
SELECT pg_advisory_xact_lock(hashtextextended(%(batch_key)s, 0));

-- name: upsert_taxonomy
INSERT INTO tag_taxonomies (taxonomy_version, name, source, content)
VALUES (%(taxonomy_version)s, %(taxonomy_name)s, %(taxonomy_source)s, %(taxonomy_content)s)
ON CONFLICT (taxonomy_version) DO NOTHING;

-- name: create_stage_tags
CREATE TEMP TABLE stage_tags (name text, category text, exclusive boolean, description text) ON COMMIT DROP;

-- name: upsert_tags
INSERT INTO tags AS t (name, category, exclusive, description, taxonomy_version)
SELECT name, category, exclusive, description, %(taxonomy_version)s FROM stage_tags
ON CONFLICT (name) DO UPDATE SET
    category = EXCLUDED.category, exclusive = EXCLUDED.exclusive, description = EXCLUDED.description,
    taxonomy_version = EXCLUDED.taxonomy_version, origin = 'taxonomy', updated_at = now()
WHERE (t.category, t.exclusive, t.description, t.taxonomy_version, t.origin)
      IS DISTINCT FROM (EXCLUDED.category, EXCLUDED.exclusive, EXCLUDED.description, EXCLUDED.taxonomy_version,
                        'taxonomy');

-- name: register_model
INSERT INTO embedding_models (model_version, model_id, backend, dim, scoring, index_name, hnsw_m, hnsw_ef_construction)
VALUES (%(model_version)s, %(model_id)s, %(backend)s, %(dim)s, %(scoring)s, %(index_name)s, %(hnsw_m)s,
        %(hnsw_ef_construction)s)
ON CONFLICT (model_version) DO NOTHING;

-- name: model_row
SELECT dim, index_name, hnsw_m, hnsw_ef_construction FROM embedding_models WHERE model_version = %(model_version)s;

-- name: create_stage
CREATE TEMP TABLE stage_embeddings (image_key text, embedding halfvec) ON COMMIT DROP;
CREATE TEMP TABLE stage_image_tags (
    image_key text, tag text, confidence real, threshold real, threshold_source text
) ON COMMIT DROP;
CREATE TEMP TABLE stage_review (
    image_key text, tag text, reason text, confidence real, threshold real, review_floor real
) ON COMMIT DROP;
CREATE TEMP TABLE stage_creator_tags (
    platform text, username text, tag text, share real, mean_confidence real, images_tagged integer,
    images_analysed integer
) ON COMMIT DROP;
CREATE TEMP TABLE stage_creator_analysis (platform text, username text, images_analysed integer) ON COMMIT DROP;

-- name: upsert_embeddings
INSERT INTO image_embeddings AS e (model_version, image_id, embedding, batch_key)
SELECT %(model_version)s, i.image_id, s.embedding, %(batch_key)s
FROM stage_embeddings s JOIN images i ON i.image_key = s.image_key
ON CONFLICT (model_version, image_id) DO UPDATE SET
    embedding = EXCLUDED.embedding, batch_key = EXCLUDED.batch_key, updated_at = now()
WHERE (e.embedding, e.batch_key) IS DISTINCT FROM (EXCLUDED.embedding, EXCLUDED.batch_key);

-- name: delete_stale_embeddings
DELETE FROM image_embeddings e
USING images i
WHERE e.image_id = i.image_id AND i.batch_key = %(batch_key)s AND e.model_version = %(model_version)s
  AND NOT EXISTS (SELECT 1 FROM stage_embeddings s WHERE s.image_key = i.image_key);

-- name: upsert_image_tags
INSERT INTO image_tags AS t (image_id, tag_id, source, model_version, present, confidence, threshold,
                             threshold_source, taxonomy_version, batch_key, creator_category)
SELECT i.image_id, g.tag_id, 'ai', %(model_version)s, true, s.confidence, s.threshold, s.threshold_source,
       %(taxonomy_version)s, %(batch_key)s, i.creator_category  -- sql/017: the category filter's copy
FROM stage_image_tags s JOIN images i ON i.image_key = s.image_key JOIN tags g ON g.name = s.tag
ON CONFLICT (image_id, tag_id, source, model_version) DO UPDATE SET
    confidence = EXCLUDED.confidence, threshold = EXCLUDED.threshold, threshold_source = EXCLUDED.threshold_source,
    taxonomy_version = EXCLUDED.taxonomy_version, batch_key = EXCLUDED.batch_key, updated_at = now()
WHERE (t.confidence, t.threshold, t.threshold_source, t.taxonomy_version, t.batch_key)
      IS DISTINCT FROM (EXCLUDED.confidence, EXCLUDED.threshold, EXCLUDED.threshold_source,
                        EXCLUDED.taxonomy_version, EXCLUDED.batch_key);

-- name: delete_stale_image_tags
DELETE FROM image_tags t
USING images i, tags g
WHERE t.image_id = i.image_id AND t.tag_id = g.tag_id AND i.batch_key = %(batch_key)s
  AND t.source = 'ai' AND t.model_version = %(model_version)s
  AND NOT EXISTS (SELECT 1 FROM stage_image_tags s WHERE s.image_key = i.image_key AND s.tag = g.name);

-- name: upsert_review
-- A pair a person already decided (a 'user' row) is not queued again; a resolved item is left alone.
INSERT INTO tag_review_queue AS q (image_id, tag_id, model_version, reason, confidence, threshold, review_floor,
                                   taxonomy_version, batch_key)
SELECT i.image_id, g.tag_id, %(model_version)s, s.reason, s.confidence, s.threshold, s.review_floor,
       %(taxonomy_version)s, %(batch_key)s
FROM stage_review s JOIN images i ON i.image_key = s.image_key JOIN tags g ON g.name = s.tag
WHERE NOT EXISTS (SELECT 1 FROM image_tags u
                  WHERE u.image_id = i.image_id AND u.tag_id = g.tag_id AND u.source = 'user')
ON CONFLICT (image_id, tag_id, model_version) DO UPDATE SET
    reason = EXCLUDED.reason, confidence = EXCLUDED.confidence, threshold = EXCLUDED.threshold,
    review_floor = EXCLUDED.review_floor, taxonomy_version = EXCLUDED.taxonomy_version,
    batch_key = EXCLUDED.batch_key, updated_at = now()
WHERE q.status = 'pending' AND q.reason <> 'creator_dispute'  -- a creator's dispute waits for a person
  AND (q.reason, q.confidence, q.threshold, q.review_floor, q.taxonomy_version, q.batch_key)
      IS DISTINCT FROM (EXCLUDED.reason, EXCLUDED.confidence, EXCLUDED.threshold, EXCLUDED.review_floor,
                        EXCLUDED.taxonomy_version, EXCLUDED.batch_key);

-- name: delete_stale_review
DELETE FROM tag_review_queue q
USING images i, tags g
WHERE q.image_id = i.image_id AND q.tag_id = g.tag_id AND i.batch_key = %(batch_key)s
  AND q.model_version = %(model_version)s AND q.status = 'pending' AND q.reason <> 'creator_dispute'
  AND NOT EXISTS (SELECT 1 FROM stage_review s WHERE s.image_key = i.image_key AND s.tag = g.name);

-- name: upsert_creator_tags
INSERT INTO creator_tags AS ct (creator_id, tag_id, source, model_version, share, mean_confidence, images_tagged,
                                images_analysed, taxonomy_version, batch_key)
SELECT c.creator_id, g.tag_id, 'ai', %(model_version)s, s.share, s.mean_confidence, s.images_tagged,
       s.images_analysed, %(taxonomy_version)s, %(batch_key)s
FROM stage_creator_tags s
JOIN creators c ON c.platform = s.platform AND c.username = s.username
JOIN tags g ON g.name = s.tag
ON CONFLICT (creator_id, tag_id, source, model_version) DO UPDATE SET
    share = EXCLUDED.share, mean_confidence = EXCLUDED.mean_confidence, images_tagged = EXCLUDED.images_tagged,
    images_analysed = EXCLUDED.images_analysed, taxonomy_version = EXCLUDED.taxonomy_version,
    batch_key = EXCLUDED.batch_key, updated_at = now()
WHERE (ct.share, ct.mean_confidence, ct.images_tagged, ct.images_analysed, ct.taxonomy_version, ct.batch_key)
      IS DISTINCT FROM (EXCLUDED.share, EXCLUDED.mean_confidence, EXCLUDED.images_tagged, EXCLUDED.images_analysed,
                        EXCLUDED.taxonomy_version, EXCLUDED.batch_key);

-- name: delete_stale_creator_tags
DELETE FROM creator_tags ct
USING creators c, tags g
WHERE ct.creator_id = c.creator_id AND ct.tag_id = g.tag_id AND c.batch_key = %(batch_key)s
  AND ct.source = 'ai' AND ct.model_version = %(model_version)s
  AND NOT EXISTS (SELECT 1 FROM stage_creator_tags s
                  WHERE s.platform = c.platform AND s.username = c.username AND s.tag = g.name);

-- name: record_history
-- A history row per analysed creator whose tags differ from its latest recorded analysis.
WITH analysis AS (
    SELECT c.creator_id, a.images_analysed,
           coalesce((SELECT jsonb_object_agg(s.tag, jsonb_build_object(
                                'share', round(s.share::numeric, 4),
                                'confidence', round(s.mean_confidence::numeric, 4)))
                     FROM stage_creator_tags s WHERE s.platform = a.platform AND s.username = a.username),
                    '{}'::jsonb) AS tags
    FROM stage_creator_analysis a JOIN creators c ON c.platform = a.platform AND c.username = a.username
), latest AS (
    SELECT DISTINCT ON (h.creator_id) h.creator_id, h.tags, h.images_analysed, h.taxonomy_version
    FROM tag_analysis_history h JOIN analysis a USING (creator_id)
    WHERE h.model_version = %(model_version)s
    ORDER BY h.creator_id, h.analysed_at DESC, h.analysis_id DESC
)
INSERT INTO tag_analysis_history (creator_id, model_version, taxonomy_version, images_analysed, tags, batch_key, run_id)
SELECT a.creator_id, %(model_version)s, %(taxonomy_version)s, a.images_analysed, a.tags, %(batch_key)s, %(run_id)s
FROM analysis a LEFT JOIN latest l USING (creator_id)
WHERE l.creator_id IS NULL
   OR (l.tags, l.images_analysed, l.taxonomy_version)
      IS DISTINCT FROM (a.tags, a.images_analysed, %(taxonomy_version)s::text);

-- name: record_promotion
INSERT INTO tag_promotions (batch_key, model_version, run_id, taxonomy_version, counts)
VALUES (%(batch_key)s, %(model_version)s, %(run_id)s, %(taxonomy_version)s, %(counts)s)
ON CONFLICT (batch_key, model_version, run_id) DO UPDATE SET counts = EXCLUDED.counts, promoted_at = now();

-- name: create_vector_index
-- Composed with psycopg.sql (identifier and literals quoted by psycopg, never by string formatting).
CREATE INDEX IF NOT EXISTS {index_name} ON image_embeddings
USING hnsw ((embedding::halfvec({dim})) halfvec_cosine_ops)
WITH (m = {m}, ef_construction = {ef_construction})
WHERE model_version = {model_version};
