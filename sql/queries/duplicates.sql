-- Images already in the warehouse that a new batch is compared against.

-- name: existing_hashes
SELECT image_key, sha256, pdq_hash, pdq_quality
FROM images
WHERE status = 'ok' AND batch_key <> %(batch_key)s AND sha256 IS NOT NULL;
