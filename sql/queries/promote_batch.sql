-- Promotion of one creator batch. Every statement runs inside ONE transaction opened by
-- creatorlens.promotion.promote(); staging tables are dropped at commit.
-- Upserts are keyed on natural keys and skip rows that did not change, so re-running a
-- batch writes nothing new; rows of this batch that the new run no longer produced are removed.

-- name: lock_batch
SELECT pg_advisory_xact_lock(hashtextextended(%(batch_key)s, 0));

-- name: create_stage
CREATE TEMP TABLE stage_creators (
    platform text, username text, full_name text, bio text, category text, country text,
    followers bigint, is_business boolean, is_verified boolean, sources text[],
    following bigint, post_count bigint, external_url text, is_private boolean
) ON COMMIT DROP;
CREATE TEMP TABLE stage_posts (
    platform text, post_id text, username text, shortcode text, taken_at timestamptz, caption text,
    likes bigint, comments bigint, media_url text, is_video boolean,
    video_url text, video_duration double precision, view_count bigint, play_count bigint
) ON COMMIT DROP;
CREATE TEMP TABLE stage_images (
    image_key text, platform text, post_id text, username text, rank smallint, engagement bigint,
    source_uri text, status text, error_reason text, error text, sha256 text, blob_key text, thumb_key text,
    byte_size bigint, width integer, height integer, source_format text, source_mode text, frames integer,
    exif_rotated boolean, pdq_hash text, pdq_quality smallint, processed_at timestamptz
) ON COMMIT DROP;
CREATE TEMP TABLE stage_duplicates (
    image_key_a text, image_key_b text, distance smallint, kind text, transform text
) ON COMMIT DROP;

-- name: upsert_creators
INSERT INTO creators AS c (platform, username, full_name, bio, category, country, followers,
                           is_business, is_verified, sources, following, post_count, external_url, is_private,
                           batch_key)
SELECT platform, username, full_name, bio, category, country, followers, is_business, is_verified,
       coalesce(sources, '{}'), following, post_count, external_url, is_private, %(batch_key)s
FROM stage_creators
ON CONFLICT (platform, username) DO UPDATE SET
    full_name   = coalesce(EXCLUDED.full_name, c.full_name),
    bio         = coalesce(EXCLUDED.bio, c.bio),
    category    = coalesce(EXCLUDED.category, c.category),
    country     = coalesce(EXCLUDED.country, c.country),
    followers   = coalesce(EXCLUDED.followers, c.followers),
    is_business = coalesce(EXCLUDED.is_business, c.is_business),
    is_verified = coalesce(EXCLUDED.is_verified, c.is_verified),
    sources     = EXCLUDED.sources,
    following   = coalesce(EXCLUDED.following, c.following),
    post_count  = coalesce(EXCLUDED.post_count, c.post_count),
    external_url = coalesce(EXCLUDED.external_url, c.external_url),
    is_private  = coalesce(EXCLUDED.is_private, c.is_private),
    batch_key   = EXCLUDED.batch_key,
    updated_at  = now()
WHERE (c.full_name, c.bio, c.category, c.country, c.followers, c.is_business, c.is_verified, c.sources, c.batch_key,
       c.following, c.post_count, c.external_url, c.is_private)
      IS DISTINCT FROM
      (coalesce(EXCLUDED.full_name, c.full_name), coalesce(EXCLUDED.bio, c.bio),
       coalesce(EXCLUDED.category, c.category), coalesce(EXCLUDED.country, c.country),
       coalesce(EXCLUDED.followers, c.followers), coalesce(EXCLUDED.is_business, c.is_business),
       coalesce(EXCLUDED.is_verified, c.is_verified), EXCLUDED.sources, EXCLUDED.batch_key,
       coalesce(EXCLUDED.following, c.following), coalesce(EXCLUDED.post_count, c.post_count),
       coalesce(EXCLUDED.external_url, c.external_url), coalesce(EXCLUDED.is_private, c.is_private));

-- name: upsert_posts
INSERT INTO posts AS p (platform, post_id, username, shortcode, taken_at, caption, likes, comments,
                        media_url, is_video, video_url, video_duration, view_count, play_count, batch_key)
SELECT platform, post_id, username, shortcode, taken_at, caption, coalesce(likes, 0), coalesce(comments, 0),
       media_url, coalesce(is_video, false), video_url, video_duration, view_count, play_count, %(batch_key)s
FROM stage_posts
ON CONFLICT (platform, post_id) DO UPDATE SET
    username = EXCLUDED.username, shortcode = EXCLUDED.shortcode, taken_at = EXCLUDED.taken_at,
    caption = EXCLUDED.caption, likes = EXCLUDED.likes, comments = EXCLUDED.comments,
    media_url = EXCLUDED.media_url, is_video = EXCLUDED.is_video, video_url = EXCLUDED.video_url,
    video_duration = EXCLUDED.video_duration, view_count = EXCLUDED.view_count, play_count = EXCLUDED.play_count,
    batch_key = EXCLUDED.batch_key, updated_at = now()
WHERE (p.username, p.shortcode, p.taken_at, p.caption, p.likes, p.comments, p.media_url, p.is_video, p.batch_key,
       p.video_url, p.video_duration, p.view_count, p.play_count)
      IS DISTINCT FROM
      (EXCLUDED.username, EXCLUDED.shortcode, EXCLUDED.taken_at, EXCLUDED.caption, EXCLUDED.likes,
       EXCLUDED.comments, EXCLUDED.media_url, EXCLUDED.is_video, EXCLUDED.batch_key,
       EXCLUDED.video_url, EXCLUDED.video_duration, EXCLUDED.view_count, EXCLUDED.play_count);

-- name: delete_stale_posts
DELETE FROM posts p
WHERE p.batch_key = %(batch_key)s
  AND NOT EXISTS (SELECT 1 FROM stage_posts s WHERE s.platform = p.platform AND s.post_id = p.post_id);

-- name: upsert_images
INSERT INTO images AS i (image_key, platform, post_id, username, batch_key, rank, engagement, source_uri,
                         status, error_reason, error, sha256, blob_key, thumb_key, byte_size, width, height,
                         source_format, source_mode, frames, exif_rotated, pdq_hash, pdq_quality, processed_at)
SELECT image_key, platform, post_id, username, %(batch_key)s, rank, engagement, source_uri,
       status, error_reason, error, sha256, blob_key, thumb_key, byte_size, width, height,
       source_format, source_mode, frames, exif_rotated, pdq_hash, pdq_quality, processed_at
FROM stage_images
ON CONFLICT (image_key) DO UPDATE SET
    platform = EXCLUDED.platform, post_id = EXCLUDED.post_id, username = EXCLUDED.username,
    batch_key = EXCLUDED.batch_key, rank = EXCLUDED.rank, engagement = EXCLUDED.engagement,
    source_uri = EXCLUDED.source_uri, status = EXCLUDED.status, error_reason = EXCLUDED.error_reason,
    error = EXCLUDED.error, sha256 = EXCLUDED.sha256, blob_key = EXCLUDED.blob_key,
    thumb_key = EXCLUDED.thumb_key, byte_size = EXCLUDED.byte_size, width = EXCLUDED.width,
    height = EXCLUDED.height, source_format = EXCLUDED.source_format, source_mode = EXCLUDED.source_mode,
    frames = EXCLUDED.frames, exif_rotated = EXCLUDED.exif_rotated, pdq_hash = EXCLUDED.pdq_hash,
    pdq_quality = EXCLUDED.pdq_quality, processed_at = EXCLUDED.processed_at, updated_at = now()
WHERE (i.batch_key, i.rank, i.engagement, i.source_uri, i.status, i.error_reason, i.error, i.sha256,
       i.blob_key, i.thumb_key, i.width, i.height, i.pdq_hash, i.pdq_quality)
      IS DISTINCT FROM
      (EXCLUDED.batch_key, EXCLUDED.rank, EXCLUDED.engagement, EXCLUDED.source_uri, EXCLUDED.status,
       EXCLUDED.error_reason, EXCLUDED.error, EXCLUDED.sha256, EXCLUDED.blob_key, EXCLUDED.thumb_key,
       EXCLUDED.width, EXCLUDED.height, EXCLUDED.pdq_hash, EXCLUDED.pdq_quality);

-- name: batch_has_images
-- No stored images: the batch's first promotion, which COPYs straight into images (promotion.py).
SELECT EXISTS (SELECT 1 FROM images WHERE batch_key = %(batch_key)s);

-- name: delete_stale_images
DELETE FROM images i
WHERE i.batch_key = %(batch_key)s
  AND NOT EXISTS (SELECT 1 FROM stage_images s WHERE s.image_key = i.image_key);

-- name: upsert_duplicates
-- A pair belongs to the later batch of its two images, whichever batch finds it, so re-running an
-- older batch that sees the pair again rewrites nothing (its batch_key used to flip back and forth).
INSERT INTO image_duplicates AS d (image_key_a, image_key_b, distance, kind, transform, batch_key)
SELECT s.image_key_a, s.image_key_b, s.distance, s.kind, coalesce(s.transform, 'none'),
       GREATEST(coalesce(ia.batch_key, %(batch_key)s), coalesce(ib.batch_key, %(batch_key)s))
FROM stage_duplicates s
LEFT JOIN images ia ON ia.image_key = s.image_key_a
LEFT JOIN images ib ON ib.image_key = s.image_key_b
ON CONFLICT (image_key_a, image_key_b) DO UPDATE SET
    distance = EXCLUDED.distance, kind = EXCLUDED.kind, transform = EXCLUDED.transform,
    batch_key = EXCLUDED.batch_key, updated_at = now()
WHERE (d.distance, d.kind, d.transform, d.batch_key)
      IS DISTINCT FROM (EXCLUDED.distance, EXCLUDED.kind, EXCLUDED.transform, EXCLUDED.batch_key);

-- name: delete_stale_duplicates
DELETE FROM image_duplicates d
WHERE d.batch_key = %(batch_key)s
  AND NOT EXISTS (SELECT 1 FROM stage_duplicates s
                  WHERE s.image_key_a = d.image_key_a AND s.image_key_b = d.image_key_b);

-- name: sync_image_facets
-- The search filters' columns of the batch's images (sql/016_search_facets.sql): the creator's
-- category, the post's date and the duplicate flag, from their sources, after images and duplicates
-- are promoted. Only rows whose values differ are written: none on a first load, whose COPY carries
-- them, nor on an unchanged rerun.
UPDATE images i SET creator_category = f.creator_category, taken_at = f.taken_at, is_duplicate = f.is_duplicate
FROM (SELECT b.image_id, lower(c.category) AS creator_category, p.taken_at,
             EXISTS (SELECT 1 FROM image_duplicates d WHERE d.image_key_b = b.image_key) AS is_duplicate
      FROM images b
      LEFT JOIN creators c ON c.platform = b.platform AND c.username = b.username
      LEFT JOIN posts p ON p.platform = b.platform AND p.post_id = b.post_id
      WHERE b.batch_key = %(batch_key)s) f
WHERE i.image_id = f.image_id
  AND (i.creator_category, i.taken_at, i.is_duplicate) IS DISTINCT FROM (f.creator_category, f.taken_at, f.is_duplicate);

-- name: record_promotion
INSERT INTO promotions (batch_key, run_id, code_version, counts)
VALUES (%(batch_key)s, %(run_id)s, %(code_version)s, %(counts)s)
ON CONFLICT (batch_key, run_id) DO UPDATE SET counts = EXCLUDED.counts, promoted_at = now();
