-- Operations: the new-creator sensor, the run-failure sensor and `creatorlens status`.

-- name: unbatched_creators
-- Creators in the warehouse (inserted directly, not through a source file) that no batch holds.
SELECT c.username FROM creators c
WHERE c.platform = %(platform)s
  AND NOT EXISTS (SELECT 1 FROM creator_batches b WHERE b.platform = c.platform AND b.username = c.username)
ORDER BY c.creator_id;

-- name: stamp_batches
-- Give directly inserted creators the batch the sensor assigned them.
UPDATE creators c SET batch_key = b.batch_key, updated_at = now()
FROM creator_batches b
WHERE c.batch_key IS NULL AND b.platform = c.platform AND b.username = c.username;

-- name: change_marker
-- Cheap (the primary key index): a creator inserted directly raises max(creator_id).
SELECT coalesce(max(creator_id), 0) FROM creators;

-- name: record_failure
INSERT INTO batch_failures (run_id, batch_key, job_name, failed_steps, error_class, error, failed_at)
VALUES (%(run_id)s, %(batch_key)s, %(job_name)s, %(failed_steps)s, %(error_class)s, %(error)s, %(failed_at)s)
ON CONFLICT (run_id) DO UPDATE SET
    failed_steps = EXCLUDED.failed_steps, error_class = EXCLUDED.error_class, error = EXCLUDED.error,
    failed_at = EXCLUDED.failed_at, recorded_at = now();

-- name: batch_states
-- Per batch: creators, last promotion, last recorded failure.
SELECT cb.batch_key, cb.creators, p.last_promoted, f.last_failed
FROM (SELECT batch_key, count(*) AS creators FROM creator_batches GROUP BY batch_key) cb
LEFT JOIN (SELECT batch_key, max(promoted_at) AS last_promoted FROM promotions GROUP BY batch_key) p
       ON p.batch_key = cb.batch_key
LEFT JOIN (SELECT batch_key, max(failed_at) AS last_failed FROM batch_failures GROUP BY batch_key) f
       ON f.batch_key = cb.batch_key
ORDER BY cb.batch_key;

-- name: last_failures
SELECT failed_at, batch_key, job_name, array_to_string(failed_steps, ', ') AS steps, error_class, error
FROM batch_failures ORDER BY failed_at DESC, run_id LIMIT %(limit)s;

-- name: open_flags_by_batch
-- Batches holding images a reviewer flagged for re-analysis, with the newest open flag of each.
SELECT i.batch_key, max(f.flag_id) AS newest_flag, count(*) AS flags
FROM image_flags f JOIN images i ON i.image_id = f.image_id
WHERE f.resolved_at IS NULL
GROUP BY i.batch_key
ORDER BY i.batch_key;

-- name: retryable_failed_images
-- Per batch, images that failed for a reason a later try may not meet: the network, a timeout,
-- or a server that said "later" (429, 502-504). `creatorlens run` re-runs such batches.
SELECT batch_key, count(*) AS images
FROM images
WHERE status = 'failed'
  AND batch_key = ANY(%(batch_keys)s)
  AND (error_reason IN ('network_error', 'timeout')
       OR (error_reason = 'http_error' AND error ~ 'HTTP (429|502|503|504) '))
GROUP BY batch_key
ORDER BY batch_key;
