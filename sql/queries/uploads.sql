-- Uploads (sql/015_uploads.sql): the app stores them, raw_sources reads them as posts of their
-- creator's batch, upload_sensor launches their run, upload_status_sensor records how it ended.

-- name: upload_upsert
-- The same bytes for the same creator again: the row already there (created = false), unchanged,
-- except that a failed one is tried again (pending, its old reason and run cleared).
INSERT INTO uploads AS u (platform, username, sha256, blob_key, uploaded_by, image_key)
VALUES (%(platform)s::text, %(username)s, %(sha256)s::text, %(blob_key)s, %(uploaded_by)s,
        %(platform)s::text || ':upload-' || left(%(sha256)s::text, 16))
ON CONFLICT (platform, username, sha256) DO UPDATE SET
    status = CASE WHEN u.status = 'failed' THEN 'pending' ELSE u.status END,
    reason = CASE WHEN u.status = 'failed' THEN NULL ELSE u.reason END,
    run_key = CASE WHEN u.status = 'failed' THEN NULL ELSE u.run_key END,
    run_id = CASE WHEN u.status = 'failed' THEN NULL ELSE u.run_id END,
    updated_at = CASE WHEN u.status = 'failed' THEN now() ELSE u.updated_at END
RETURNING u.id, (xmax = 0) AS created;

-- name: upload_by_id
SELECT id, platform, username, sha256, blob_key, uploaded_by, created_at, status, reason, run_id, image_key,
       updated_at
FROM uploads WHERE id = %(id)s;

-- name: uploads_of_creator
SELECT id, platform, username, sha256, blob_key, uploaded_by, created_at, status, reason, run_id, image_key,
       updated_at
FROM uploads WHERE platform = %(platform)s AND username = %(username)s
ORDER BY created_at DESC, id DESC LIMIT %(limit)s;

-- name: uploads_of_batch
-- raw_sources: every upload of the batch's creators becomes a post of theirs.
SELECT u.platform, u.username, u.sha256, u.blob_key, u.created_at
FROM uploads u
JOIN creator_batches b ON b.platform = u.platform AND b.username = u.username
WHERE b.batch_key = %(batch_key)s
ORDER BY u.username, u.id;

-- name: uploads_to_launch
-- upload_sensor: pending uploads, and those marked processing whose run Dagster has not made yet
-- (a tick that ended before its request was launched: asked again under the same run_key).
SELECT u.id, u.platform, u.username, u.status, u.run_key, b.batch_key
FROM uploads u
JOIN creator_batches b ON b.platform = u.platform AND b.username = u.username
WHERE u.status = 'pending' OR (u.status = 'processing' AND u.run_id IS NULL)
ORDER BY b.batch_key, u.id;

-- name: uploads_mark_processing
UPDATE uploads SET status = 'processing', run_key = %(run_key)s, reason = NULL, updated_at = now()
WHERE id = ANY(%(ids)s) AND status = 'pending';

-- name: uploads_processing
SELECT id, image_key, run_key, run_id FROM uploads WHERE status = 'processing' ORDER BY id;

-- name: uploads_link_run
UPDATE uploads SET run_id = %(run_id)s, updated_at = now()
WHERE run_key = %(run_key)s AND status = 'processing' AND run_id IS NULL;

-- name: upload_image_outcome
-- What the run made of an upload: its image row, whether it has an embedding and tags it carries.
SELECT i.status, i.error_reason, i.error,
       EXISTS (SELECT 1 FROM image_embeddings e WHERE e.image_id = i.image_id) AS embedded,
       EXISTS (SELECT 1 FROM image_tags t WHERE t.image_id = i.image_id AND t.present) AS tagged
FROM images i WHERE i.image_key = %(image_key)s;

-- name: upload_finish
UPDATE uploads SET status = %(status)s, reason = %(reason)s, run_id = %(run_id)s, updated_at = now()
WHERE id = %(id)s AND status = 'processing';
