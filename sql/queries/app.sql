-- Read queries of the review and search app (app.queries), shared by the JSON API and the pages.
-- Every value is a bound parameter; optional filters are switched by their parameter (NULL = off),
-- so each statement is written out whole here and nothing is composed at run time. The app also
-- reads statements other modules own, by their file: search.sql's current_model, review.sql's
-- image_id and effective_tags, profiles.sql's similar_creators, report.sql's batches.

-- name: list_creators
-- A creator "has" a tag when at least min_share of its images carry it, in creator_tags of the model
-- version asked for. tags_all: every one of them (the array is deduplicated by the caller); tags_any:
-- at least one; topics: any of the LLM-written content topics (lower-cased by the caller).
SELECT c.platform, c.username, c.full_name, c.category, c.country, c.followers, c.is_business,
       c.is_verified, c.batch_key,
       (SELECT count(*) FROM images i WHERE i.platform = c.platform AND i.username = c.username
        AND i.status = 'ok') AS images
FROM creators c
WHERE (%(min_followers)s::bigint IS NULL OR c.followers >= %(min_followers)s)
  AND (%(max_followers)s::bigint IS NULL OR c.followers <= %(max_followers)s)
  AND (%(is_business)s::boolean IS NULL OR c.is_business = %(is_business)s)
  AND (%(is_verified)s::boolean IS NULL OR c.is_verified = %(is_verified)s)
  AND (%(country)s::text IS NULL OR lower(c.country) = lower(%(country)s))
  AND (%(category)s::text IS NULL OR lower(c.category) = lower(%(category)s))
  AND (%(tags_all)s::text[] IS NULL OR (
        SELECT count(DISTINCT g.name) FROM creator_tags ct JOIN tags g ON g.tag_id = ct.tag_id
        WHERE ct.creator_id = c.creator_id AND ct.model_version = %(version)s AND ct.share >= %(min_share)s
          AND g.name = ANY(%(tags_all)s)) = cardinality(%(tags_all)s::text[]))
  AND (%(tags_any)s::text[] IS NULL OR EXISTS (
        SELECT 1 FROM creator_tags ct JOIN tags g ON g.tag_id = ct.tag_id
        WHERE ct.creator_id = c.creator_id AND ct.model_version = %(version)s AND ct.share >= %(min_share)s
          AND g.name = ANY(%(tags_any)s)))
  AND (%(topics)s::text[] IS NULL OR EXISTS (
        SELECT 1 FROM creator_profiles cp
        WHERE cp.platform = c.platform AND cp.username = c.username AND cp.status = 'ok'
          AND EXISTS (SELECT 1 FROM unnest(cp.topics) t WHERE lower(t) = ANY(%(topics)s))))
  AND (%(has_duplicates)s::boolean IS NULL OR %(has_duplicates)s = EXISTS (
        SELECT 1 FROM image_duplicates d JOIN images i ON i.image_key IN (d.image_key_a, d.image_key_b)
        WHERE i.platform = c.platform AND i.username = c.username))
ORDER BY c.followers DESC NULLS LAST, c.username
LIMIT %(limit)s OFFSET %(offset)s;

-- name: creator
SELECT platform, username, full_name, bio, category, country, followers, is_business, is_verified,
       batch_key, updated_at
FROM creators WHERE platform = %(platform)s AND username = %(username)s;

-- name: creator_images
SELECT image_key, status, error_reason, thumb_key, width, height, rank FROM images
WHERE platform = %(platform)s AND username = %(username)s ORDER BY rank;

-- name: creator_llm_profile
SELECT status, error, persona, topics, profile, model, prompt_version, updated_at FROM creator_profiles
WHERE platform = %(platform)s AND username = %(username)s;

-- name: creator_tags
SELECT g.name, g.category, ct.share, ct.mean_confidence, ct.images_tagged, ct.images_analysed
FROM creator_tags ct JOIN tags g ON g.tag_id = ct.tag_id JOIN creators c ON c.creator_id = ct.creator_id
WHERE c.platform = %(platform)s AND c.username = %(username)s AND ct.model_version = %(version)s
ORDER BY ct.share DESC, ct.mean_confidence DESC, g.name;

-- name: creator_exists
SELECT EXISTS (SELECT 1 FROM creators WHERE platform = %(platform)s AND username = %(username)s);

-- name: creator_mean_embedding
-- The mean of a creator's image vectors for one model version (all of a version's vectors have its
-- dimension: the version's index expression enforces it), as text '[x,y,...]'; NULL: no images.
SELECT avg(e.embedding::vector)::text
FROM image_embeddings e JOIN images i ON i.image_id = e.image_id
WHERE i.platform = %(platform)s AND i.username = %(username)s AND e.model_version = %(version)s;

-- name: image_owners
SELECT image_id, platform, username FROM images WHERE image_id = ANY(%(ids)s);

-- name: match_brief
-- Creators carrying every required tag (share >= min_share), ranked by how many preferred tags they
-- also carry, then by the summed share of all matched tags.
WITH have AS (
    SELECT ct.creator_id, g.name, ct.share
    FROM creator_tags ct JOIN tags g ON g.tag_id = ct.tag_id
    WHERE ct.model_version = %(version)s AND ct.share >= %(min_share)s AND g.name = ANY(%(wanted)s)
)
SELECT c.platform, c.username, c.category, c.followers,
       count(*) FILTER (WHERE h.name = ANY(%(required)s)) AS required_matched,
       count(*) FILTER (WHERE h.name = ANY(%(preferred)s)) AS preferred_matched,
       sum(h.share) AS share_sum,
       jsonb_object_agg(h.name, round(h.share::numeric, 4)) AS matched
FROM have h JOIN creators c ON c.creator_id = h.creator_id
GROUP BY c.creator_id
HAVING count(*) FILTER (WHERE h.name = ANY(%(required)s)) = %(n_required)s
ORDER BY preferred_matched DESC, share_sum DESC, c.username
LIMIT %(limit)s;

-- name: list_tags
-- Tags with how many images carry each now (effective_image_tags: reviewer decisions over the
-- model version's). like: a LIKE pattern (metacharacters escaped) matching the name's start or the
-- start of one of its words; order 'name' or 'popular' (most images first, then name).
WITH eff AS (
    SELECT t.tag_id, t.image_id FROM effective_image_tags(%(version)s) t WHERE t.present
)
SELECT g.name, g.category, g.exclusive, g.origin, g.description, count(DISTINCT eff.image_id) AS images
FROM tags g LEFT JOIN eff ON eff.tag_id = g.tag_id
WHERE (%(like)s::text IS NULL OR g.name LIKE %(like)s
       OR ' ' || translate(g.name, '_-', '  ') LIKE '%% ' || %(like)s)
  AND (%(category)s::text IS NULL OR g.category = %(category)s)
GROUP BY g.tag_id
ORDER BY CASE WHEN %(order)s = 'popular' THEN count(DISTINCT eff.image_id) END DESC, g.name
LIMIT %(limit)s OFFSET %(offset)s;

-- name: tag_names
-- The pages' autocomplete list: names and categories only (no counts: no scan of image_tags).
SELECT name, category FROM tags ORDER BY name LIMIT %(limit)s;

-- name: image_tag_rows
-- Every tag row of an image, whoever wrote it (model versions, reviewers, escalation answers).
SELECT g.name, g.category, t.source, t.present, t.confidence, t.model_version, t.threshold,
       t.threshold_source, t.reviewer, t.updated_at
FROM image_tags t JOIN tags g ON g.tag_id = t.tag_id
WHERE t.image_id = %(image_id)s
ORDER BY g.category, g.name, t.source, t.model_version;

-- name: image_pending_reviews
SELECT q.review_id, g.name, g.category, q.reason, q.confidence, q.threshold, q.model_version
FROM tag_review_queue q JOIN tags g ON g.tag_id = q.tag_id
WHERE q.image_id = %(image_id)s AND q.status = 'pending'
ORDER BY q.confidence DESC;

-- name: list_images
SELECT image_key, platform, username, status, error_reason, thumb_key, width, height FROM images
WHERE (%(username)s::text IS NULL OR username = %(username)s)
ORDER BY image_id LIMIT %(limit)s OFFSET %(offset)s;

-- name: image
SELECT i.image_key, i.platform, i.post_id, i.username, i.status, i.error_reason, i.error, i.blob_key,
       i.thumb_key, i.width, i.height, i.sha256, p.caption, p.taken_at
FROM images i LEFT JOIN posts p ON p.platform = i.platform AND p.post_id = i.post_id
WHERE i.image_key = %(image_key)s;

-- name: image_duplicates
SELECT CASE WHEN image_key_a = %(image_key)s THEN image_key_b ELSE image_key_a END AS image_key, distance, kind
FROM image_duplicates WHERE %(image_key)s IN (image_key_a, image_key_b) ORDER BY distance;

-- name: image_ocr
SELECT line_idx, text, confidence FROM ocr_texts WHERE image_key = %(image_key)s ORDER BY line_idx;

-- name: image_persons
SELECT person_idx, x1, y1, x2, y2, score, crop_key, pose_status FROM persons
WHERE image_key = %(image_key)s ORDER BY person_idx;

-- name: image_faces
SELECT face_idx, x1, y1, x2, y2, score, cluster_id FROM faces WHERE image_key = %(image_key)s ORDER BY face_idx;

-- name: image_vision
SELECT shot_type, framing, person_count, face_count, text_lines, persons_status, faces_status, ocr_status
FROM image_vision WHERE image_key = %(image_key)s;

-- name: image_open_flag
SELECT f.reason FROM image_flags f JOIN images i ON i.image_id = f.image_id
WHERE i.image_key = %(image_key)s AND f.resolved_at IS NULL;

-- name: stage_counts
-- Progress per stage for the stats page (version: the newest model's, whose embeddings and tags count).
SELECT
  (SELECT count(*) FROM images) AS images,
  (SELECT count(*) FROM images WHERE status = 'ok') AS ok_images,
  (SELECT count(*) FROM image_vision) AS vision,
  (SELECT count(DISTINCT image_key) FROM ocr_texts) AS ocr_with_text,
  (SELECT count(*) FROM image_embeddings WHERE model_version = %(version)s) AS embedded,
  (SELECT count(DISTINCT image_id) FROM image_tags WHERE source = 'ai' AND model_version = %(version)s) AS tagged,
  (SELECT count(*) FROM creators) AS creators,
  (SELECT count(*) FROM creator_profiles WHERE status = 'ok') AS llm_profiles,
  (SELECT count(*) FROM profile_embeddings) AS profile_embeddings,
  (SELECT count(*) FROM tag_review_queue WHERE status = 'pending') AS review_pending,
  (SELECT count(*) FROM tag_review_queue WHERE status <> 'pending') AS review_resolved,
  (SELECT count(*) FROM tag_feedback) AS feedback,
  (SELECT count(*) FROM image_flags WHERE resolved_at IS NULL) AS open_flags;

-- name: images_by_status
SELECT status, count(*) AS n FROM images GROUP BY status ORDER BY status;

-- name: failures_by_reason
SELECT stage, reason, count(*) AS n FROM (
    SELECT 'images' AS stage, error_reason AS reason FROM images WHERE status = 'failed'
    UNION ALL SELECT 'persons', persons_reason FROM image_vision WHERE persons_status = 'failed'
    UNION ALL SELECT 'faces', faces_reason FROM image_vision WHERE faces_status = 'failed'
    UNION ALL SELECT 'ocr', ocr_reason FROM image_vision WHERE ocr_status = 'failed'
    UNION ALL SELECT 'llm_profiles', left(error, 80) FROM creator_profiles WHERE status = 'failed'
) f GROUP BY stage, reason ORDER BY n DESC, stage, reason;

-- name: batch_failures
SELECT batch_key, count(*) AS n, max(failed_at) AS last_failed FROM batch_failures
GROUP BY batch_key ORDER BY last_failed DESC LIMIT 20;

-- name: source_rejects_by_source
SELECT source, count(*) AS n FROM source_rejects GROUP BY source ORDER BY n DESC;
