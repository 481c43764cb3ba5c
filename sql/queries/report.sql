-- Read-only summaries for `creatorlens summary` and the demo.

-- name: table_counts
SELECT 'creator_batches' AS tbl, count(*) FROM creator_batches
UNION ALL SELECT 'creators', count(*) FROM creators
UNION ALL SELECT 'posts', count(*) FROM posts
UNION ALL SELECT 'images', count(*) FROM images
UNION ALL SELECT 'image_duplicates', count(*) FROM image_duplicates
UNION ALL SELECT 'source_rejects', count(*) FROM source_rejects
UNION ALL SELECT 'source_warnings', count(*) FROM source_warnings
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

-- name: source_warnings
SELECT source, record, message FROM source_warnings ORDER BY source, record, message LIMIT %(limit)s;

-- name: batches
-- Creators per batch and the batch's last promotion: promotions are reduced to one row per batch
-- before the join (joining them whole counted each creator once per promotion).
SELECT cb.batch_key, count(*) AS creators, max(p.last_promoted) AS last_promoted
FROM creator_batches cb
LEFT JOIN (SELECT batch_key, max(promoted_at) AS last_promoted FROM promotions GROUP BY batch_key) p
       ON p.batch_key = cb.batch_key
GROUP BY cb.batch_key ORDER BY cb.batch_key;

-- name: stage_rows
-- Rows each stage has put in the warehouse, in pipeline order (the summary's "stages" table).
SELECT * FROM (VALUES
    ('sources', 'creators, posts', (SELECT count(*) FROM creators) + (SELECT count(*) FROM posts)),
    ('images', 'ok images', (SELECT count(*) FROM images WHERE status = 'ok')),
    ('duplicates', 'pairs', (SELECT count(*) FROM image_duplicates)),
    ('vision: persons', 'persons', (SELECT count(*) FROM persons)),
    ('vision: ocr', 'text lines', (SELECT count(*) FROM ocr_texts)),
    ('vision: faces', 'faces', (SELECT count(*) FROM faces)),
    ('face embeddings', 'embedded faces', (SELECT count(*) FROM faces WHERE embedding IS NOT NULL)),
    ('embeddings', 'image embeddings', (SELECT count(*) FROM image_embeddings)),
    ('tags', 'image tags', (SELECT count(*) FROM image_tags)),
    ('creator tags', 'creator tags', (SELECT count(*) FROM creator_tags)),
    ('enrichment', 'creators enriched', (SELECT count(*) FROM creators WHERE enriched_at IS NOT NULL)),
    ('llm profiles', 'profiles', (SELECT count(*) FROM creator_profiles)),
    ('profile embeddings', 'embeddings', (SELECT count(*) FROM profile_embeddings))
) AS s (stage, what, rows_);
