-- Erasure of a creator (resources.erasure): what refers to them, and the tombstone that keeps
-- sources and sensors from bringing them back. The per-table DELETEs are composed from the
-- catalog (tables and columns found here), never from a hand-written list.

-- name: erasure_lock
-- The batching lock too (batching.sql): a sensor tick that read no tombstone yet cannot re-batch them.
SELECT pg_advisory_xact_lock(7240002), pg_advisory_xact_lock(7240010);

-- name: columns
-- Every column of every base table in the current schema, with its type category.
SELECT c.table_name, c.column_name, c.data_type, c.udt_name
FROM information_schema.columns c
JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
ORDER BY c.table_name, c.ordinal_position;

-- name: foreign_keys
-- Single- and multi-column foreign keys: (referencing table, its columns, referenced table, its columns).
SELECT src.relname AS table_name,
       array_agg(sa.attname ORDER BY k.ord) AS columns,
       dst.relname AS ref_table,
       array_agg(da.attname ORDER BY k.ord) AS ref_columns
FROM pg_constraint con
JOIN pg_class src ON src.oid = con.conrelid
JOIN pg_class dst ON dst.oid = con.confrelid
JOIN pg_namespace n ON n.oid = src.relnamespace AND n.nspname = current_schema()
CROSS JOIN LATERAL unnest(con.conkey, con.confkey) WITH ORDINALITY AS k(src_att, dst_att, ord)
JOIN pg_attribute sa ON sa.attrelid = con.conrelid AND sa.attnum = k.src_att
JOIN pg_attribute da ON da.attrelid = con.confrelid AND da.attnum = k.dst_att
WHERE con.contype = 'f'
GROUP BY con.oid, src.relname, dst.relname;

-- name: subject
-- The creator's ids and keys: creator rows, their images (and those images' content hashes), posts.
SELECT
    coalesce((SELECT array_agg(creator_id) FROM creators WHERE platform = %(platform)s AND username = %(username)s),
             '{}') AS creator_ids,
    coalesce((SELECT array_agg(image_id) FROM images WHERE platform = %(platform)s AND username = %(username)s),
             '{}') AS image_ids,
    coalesce((SELECT array_agg(image_key) FROM images WHERE platform = %(platform)s AND username = %(username)s),
             '{}') AS image_keys,
    coalesce((SELECT array_agg(post_id) FROM posts WHERE platform = %(platform)s AND username = %(username)s),
             '{}') AS post_ids,
    coalesce((SELECT array_agg(DISTINCT sha256::text) FROM images
              WHERE platform = %(platform)s AND username = %(username)s AND sha256 IS NOT NULL), '{}') AS sha256s;

-- name: shared_sha256
-- Of the creator's content hashes, those another creator's image also has (their bytes stay).
SELECT DISTINCT sha256::text FROM images
WHERE sha256::text = ANY(%(sha256s)s) AND NOT (image_id = ANY(%(image_ids)s));

-- name: tombstone
INSERT INTO creator_tombstones (platform, username_sha256, erased_by, removed)
VALUES (%(platform)s, %(hash)s, %(erased_by)s, %(removed)s)
ON CONFLICT (platform, username_sha256) DO UPDATE SET
    removed = creator_tombstones.removed || EXCLUDED.removed, erased_at = now(), erased_by = EXCLUDED.erased_by;

-- name: tombstoned
-- Of the given (platform, username hash) pairs, those that are tombstoned.
SELECT t.username_sha256 FROM creator_tombstones t
WHERE t.platform = %(platform)s AND t.username_sha256 = ANY(%(hashes)s);
