-- Creator → batch assignment. A creator belongs to exactly one batch (primary key).

-- name: lock
SELECT pg_advisory_xact_lock(7240002);

-- name: unbatched_usernames
-- The candidates no batch holds, in the given order: only the new ones travel back (a tick that
-- re-reads 50,000 known creators and finds 1,000 new fetches 1,000 rows, not 50,000).
SELECT u.username
FROM unnest(%(usernames)s::text[]) WITH ORDINALITY AS u(username, ord)
WHERE NOT EXISTS (SELECT 1 FROM creator_batches b WHERE b.platform = %(platform)s AND b.username = u.username)
ORDER BY u.ord;

-- name: max_batch_number
-- The pattern is matched once per batch, not once per creator (creators outnumber batches 100:1).
SELECT coalesce(max(substring(batch_key FROM '^batch-(\d+)$')::int), 0)
FROM (SELECT DISTINCT batch_key FROM creator_batches) AS k;

-- name: assign
-- One statement for all new members (two parallel arrays), not one INSERT per creator.
INSERT INTO creator_batches (platform, username, batch_key)
SELECT %(platform)s, u.username, u.batch_key
FROM unnest(%(usernames)s::text[], %(batch_keys)s::text[]) AS u(username, batch_key)
ON CONFLICT (platform, username) DO NOTHING;

-- name: all_batches
SELECT batch_key, count(*) AS creators FROM creator_batches GROUP BY batch_key ORDER BY batch_key;

-- name: members
SELECT username FROM creator_batches WHERE batch_key = %(batch_key)s AND platform = %(platform)s ORDER BY username;

-- name: record_reject
-- One statement for all rejects of a read (parallel arrays, (source, record) unique among them).
INSERT INTO source_rejects (source, record, reason)
SELECT * FROM unnest(%(sources)s::text[], %(records)s::text[], %(reasons)s::text[])
ON CONFLICT (source, record) DO UPDATE SET reason = EXCLUDED.reason, last_seen_at = now();

-- name: record_warning
-- One statement for all warnings of a read (parallel arrays, (source, record, message) unique among them).
INSERT INTO source_warnings (source, record, message)
SELECT * FROM unnest(%(sources)s::text[], %(records)s::text[], %(messages)s::text[])
ON CONFLICT (source, record, message) DO UPDATE SET last_seen_at = now();
