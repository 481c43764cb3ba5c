-- Nearest-neighbour search over image_embeddings, one model version at a time.
-- {dim} is composed with psycopg.sql.Literal (an integer from embedding_models): the ORDER BY
-- expression must match the partial HNSW index of that version, embedding::halfvec(dim) <=> query.
-- With a tag filter, hnsw.iterative_scan (set per transaction by creatorlens.search) lets the
-- index scan keep going until k rows pass the filter; relaxed order is re-sorted outside the CTE.

-- name: model_dim
SELECT dim FROM embedding_models WHERE model_version = %(model_version)s;

-- name: known_models
SELECT model_version FROM embedding_models ORDER BY created_at;

-- name: tag_id
SELECT tag_id FROM tags WHERE name = %(tag)s;

-- name: search_settings
SELECT set_config('hnsw.ef_search', %(ef_search)s, true),
       set_config('hnsw.iterative_scan', %(iterative_scan)s, true),
       set_config('hnsw.max_scan_tuples', %(max_scan_tuples)s, true);

-- name: stored_embedding
SELECT e.embedding FROM image_embeddings e JOIN images i ON i.image_id = e.image_id
WHERE i.image_key = %(image_key)s AND e.model_version = %(model_version)s;

-- name: nearest_images
WITH hits AS MATERIALIZED (
    SELECT e.image_id, e.embedding::halfvec({dim}) <=> %(query)s::halfvec({dim}) AS distance
    FROM image_embeddings e
    WHERE e.model_version = %(model_version)s
    ORDER BY e.embedding::halfvec({dim}) <=> %(query)s::halfvec({dim})
    LIMIT %(k)s
)
SELECT i.image_key, i.platform, i.username, i.thumb_key, h.distance
FROM hits h JOIN images i ON i.image_id = h.image_id
ORDER BY h.distance, i.image_key;

-- name: nearest_images_tagged
-- The image carries the tag for this model version (AI) or by a reviewer, and no reviewer removed it.
WITH hits AS MATERIALIZED (
    SELECT e.image_id, e.embedding::halfvec({dim}) <=> %(query)s::halfvec({dim}) AS distance
    FROM image_embeddings e
    WHERE e.model_version = %(model_version)s
      AND EXISTS (SELECT 1 FROM image_tags t
                  WHERE t.image_id = e.image_id AND t.tag_id = %(tag_id)s AND t.present
                    AND ((t.source = 'ai' AND t.model_version = %(model_version)s) OR t.source = 'user'))
      AND NOT EXISTS (SELECT 1 FROM image_tags u
                      WHERE u.image_id = e.image_id AND u.tag_id = %(tag_id)s AND u.source = 'user'
                        AND NOT u.present)
    ORDER BY e.embedding::halfvec({dim}) <=> %(query)s::halfvec({dim})
    LIMIT %(k)s
)
SELECT i.image_key, i.platform, i.username, i.thumb_key, h.distance
FROM hits h JOIN images i ON i.image_id = h.image_id
ORDER BY h.distance, i.image_key;
