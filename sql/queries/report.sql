-- Read-only summaries for `creatorlens summary` and the demo.

-- name: table_counts
SELECT 'creator_batches' AS tbl, count(*) FROM creator_batches
UNION ALL SELECT 'creators', count(*) FROM creators
UNION ALL SELECT 'posts', count(*) FROM posts
UNION ALL SELECT 'images', count(*) FROM images
UNION ALL SELECT 'image_duplicates', count(*) FROM image_duplicates
UNION ALL SELECT 'source_rejects', count(*) FROM source_rejects
UNION ALL SELECT 'promotions', count(*) FROM promotions;

-- name: image_status
SELECT status, coalesce(error_reason, '') AS reason, count(*) FROM images
GROUP BY status, error_reason ORDER BY status DESC, count(*) DESC;

-- name: duplicate_kinds
SELECT kind, count(*), count(*) FILTER (WHERE a.batch_key <> b.batch_key) AS cross_batch
FROM image_duplicates d
JOIN images a ON a.image_key = d.image_key_a
JOIN images b ON b.image_key = d.image_key_b
GROUP BY kind ORDER BY kind;

-- name: failed_images
SELECT username, post_id, error_reason, error FROM images WHERE status = 'failed'
ORDER BY username, post_id LIMIT %(limit)s;

-- name: source_rejects
SELECT source, record, reason FROM source_rejects ORDER BY source, record LIMIT %(limit)s;

-- name: batches
SELECT cb.batch_key, count(*) AS creators, max(p.promoted_at) AS last_promoted
FROM creator_batches cb
LEFT JOIN promotions p ON p.batch_key = cb.batch_key
GROUP BY cb.batch_key ORDER BY cb.batch_key;
