-- Creator → batch assignment. A creator belongs to exactly one batch (primary key).

-- name: lock
SELECT pg_advisory_xact_lock(7240002);

-- name: batched_usernames
SELECT username FROM creator_batches WHERE platform = %(platform)s AND username = ANY(%(usernames)s);

-- name: max_batch_number
SELECT coalesce(max(substring(batch_key FROM '^batch-(\d+)$')::int), 0) FROM creator_batches;

-- name: assign
INSERT INTO creator_batches (platform, username, batch_key)
VALUES (%(platform)s, %(username)s, %(batch_key)s)
ON CONFLICT (platform, username) DO NOTHING;

-- name: all_batches
SELECT batch_key, count(*) AS creators FROM creator_batches GROUP BY batch_key ORDER BY batch_key;

-- name: members
SELECT username FROM creator_batches WHERE batch_key = %(batch_key)s AND platform = %(platform)s ORDER BY username;

-- name: record_reject
INSERT INTO source_rejects (source, record, reason) VALUES (%(source)s, %(record)s, %(reason)s)
ON CONFLICT (source, record) DO UPDATE SET reason = EXCLUDED.reason, last_seen_at = now();
