-- Nearest-neighbour search over image_embeddings, one model version at a time, with the search
-- filters: the one vector search (assets.tagging.search.VectorSearch) that the search app, the
-- pipeline's search functions and the benchmarks all run. app.search's keyword ranking
-- (app_search.sql) composes the same filters in.
--
-- {dim} is composed with psycopg.sql.Literal (an integer from embedding_models): the ORDER BY
-- expression must match the partial HNSW index of that version, embedding::halfvec(dim) <=> query.
-- {filters} is composed from the fixed fragments below (no data is ever formatted in; every value is
-- a bound parameter). Statements run unprepared, so each plan sees the actual values.
--
-- The filters come in two spellings that must say the same thing:
-- * `image_filters`, one predicate with every filter switched by its parameter (NULL = off). The
--   `param IS NULL OR EXISTS (...)` form keeps each EXISTS a per-row check, which is what an ordered
--   scan wants: the HNSW scan and the ranked keyword candidates test rows in rank order and stop at
--   the limit (bench/search.py: a rare tag on 1 in 100 images costs 100+ ms this way on the HNSW
--   scan, which is why `nearest_images_exact` exists);
-- * `filter_*`, one fragment per filter, ANDed by VectorSearch for the filters in use only. Plain
--   EXISTS at the top level become semi-joins, so the planner can start from the most selective
--   filter (a tag's rows) instead of from the vector index.
-- * `set_*`: the tag and category filters as sets of image ids, for the exact ranking
--   (`nearest_images_exact_sets`), which intersects them from indexes alone.
-- The creator's category, the post's date and the duplicate flag are columns of images
-- (sql/016_search_facets.sql: creator_category lower-cased, taken_at, is_duplicate), so no filter
-- but the tag reaches another table per row.
-- The category filter also matches an image by its object tags: detected_objects.category, which
-- tag_category_map sets (sql/010_objects_erasure.sql; re-applied by the remap_object_categories job).
-- The tag filter reads effective_image_tags (sql/008_effective_tags.sql): a reviewer's "yes" or
-- "no" beats the model version's tags.

-- name: current_model
SELECT model_version, dim FROM embedding_models ORDER BY created_at DESC, model_version LIMIT 1;

-- name: model_dim
SELECT dim FROM embedding_models WHERE model_version = %(model_version)s;

-- name: known_models
SELECT model_version FROM embedding_models ORDER BY created_at;

-- name: tag_id
SELECT tag_id FROM tags WHERE name = %(tag)s;

-- name: search_settings
-- For the search's transaction only. hnsw.iterative_scan lets a filtered index scan keep going
-- until k rows pass the filters (relaxed order is re-sorted outside the CTE), up to
-- max_scan_tuples. random_page_cost 1.1 (the usual SSD value, and the searched tables are meant to
-- stay in memory): at the default 4 the planner would rather scan every row of image_embeddings
-- than look up the few hundred a rare tag filters down to (nearest_images_exact: 22 ms -> 10 ms in
-- bench/search.py). enable_memoize off: the search's joins look each image up once, so a Memoize
-- node (the planner adds one where it underestimates the ids) only copies 2.3 kB vectors into its
-- cache (a rare tag's exact ranking, 6,362 images: 58 -> 42 ms under EXPLAIN ANALYZE).
SELECT set_config('hnsw.ef_search', %(ef_search)s, true),
       set_config('hnsw.iterative_scan', %(iterative_scan)s, true),
       set_config('hnsw.max_scan_tuples', %(max_scan_tuples)s, true),
       set_config('random_page_cost', '1.1', true),
       set_config('enable_memoize', 'off', true);

-- name: stored_embedding
SELECT e.embedding FROM image_embeddings e JOIN images i ON i.image_id = e.image_id
WHERE i.image_key = %(image_key)s AND e.model_version = %(model_version)s;

-- name: image_filters
i.status = 'ok'
AND (%(category)s::text IS NULL OR i.creator_category = lower(%(category)s)
     OR EXISTS (SELECT 1 FROM detected_objects o
                WHERE o.image_id = i.image_id AND lower(o.category) = lower(%(category)s)))
AND (%(tag_id)s::int IS NULL OR EXISTS (
        SELECT 1 FROM effective_image_tags(%(model_version)s) t
        WHERE t.image_id = i.image_id AND t.tag_id = %(tag_id)s AND t.present))
AND (%(date_from)s::timestamptz IS NULL OR i.taken_at >= %(date_from)s)
AND (%(date_to)s::timestamptz IS NULL OR i.taken_at < %(date_to)s)
AND (NOT %(hide_duplicates)s OR NOT i.is_duplicate)

-- name: filter_ok
i.status = 'ok'

-- name: filter_category
-- The creator's category (images.creator_category, lower-cased), or an object on the image whose
-- label tag_category_map puts in it. The objects' images are one hashed IN list, read once per query.
i.creator_category = lower(%(category)s)
OR i.image_id IN (SELECT o.image_id FROM detected_objects o WHERE lower(o.category) = lower(%(category)s))

-- name: filter_tag
EXISTS (SELECT 1 FROM effective_image_tags(%(model_version)s) t
        WHERE t.image_id = i.image_id AND t.tag_id = %(tag_id)s AND t.present)

-- name: estimate_tag
-- The tag filter as the planner should estimate it (estimate_filtered_images only, never to select):
-- the tag's present rows of the version or of a reviewer. effective_image_tags' veto, an OR with a
-- NOT EXISTS, made the planner guess half the images a tag is on, and the index budget
-- (VectorSearch.index_budget) needs the share.
EXISTS (SELECT 1 FROM image_tags t
        WHERE t.image_id = i.image_id AND t.tag_id = %(tag_id)s AND t.present
          AND t.model_version IN (%(model_version)s, ''))

-- name: filter_dates
(%(date_from)s::timestamptz IS NULL OR i.taken_at >= %(date_from)s)
AND (%(date_to)s::timestamptz IS NULL OR i.taken_at < %(date_to)s)

-- name: filter_hide_duplicates
NOT i.is_duplicate

-- name: ids_tag
-- The images passing the tag filter, for nearest_images_exact_sets: an index-only scan of the tag's
-- present rows (image_tags_tag_rank_idx), the veto of a model's row a hashed lookup of the
-- reviewer rows.
SELECT t.image_id FROM effective_image_tags(%(model_version)s) t WHERE t.tag_id = %(tag_id)s AND t.present

-- name: ids_category
-- The images passing the category filter and every filter but the tag (status, dates, duplicates),
-- for nearest_images_exact_sets: a range of images_search_facets_idx, read from the index alone (it
-- includes is_duplicate), and the images of the category's objects, checked on their images rows.
SELECT i.image_id FROM images i
WHERE i.status = 'ok' AND i.creator_category = lower(%(category)s)
  AND (%(date_from)s::timestamptz IS NULL OR i.taken_at >= %(date_from)s)
  AND (%(date_to)s::timestamptz IS NULL OR i.taken_at < %(date_to)s)
  AND (NOT %(hide_duplicates)s OR NOT i.is_duplicate)
UNION ALL  -- the intersection removes repeats
SELECT o.image_id FROM detected_objects o JOIN images i ON i.image_id = o.image_id
WHERE lower(o.category) = lower(%(category)s) AND i.status = 'ok'
  AND (%(date_from)s::timestamptz IS NULL OR i.taken_at >= %(date_from)s)
  AND (%(date_to)s::timestamptz IS NULL OR i.taken_at < %(date_to)s)
  AND (NOT %(hide_duplicates)s OR NOT i.is_duplicate)

-- name: exact_sets_residual
-- nearest_images_exact_sets without ids_category (a tag alone): each id's images row, checked
-- against the other filters. A probe per id: the OFFSET keeps the planner from hashing every image
-- that passes them instead (it cannot know how few ids the sets leave).
JOIN LATERAL (SELECT i.image_id FROM images i WHERE i.image_id = ids.image_id AND {filters} OFFSET 0) i ON true

-- name: nearest_images
-- No filter: the version's ok images, nearest first, through the version's HNSW index.
WITH hits AS MATERIALIZED (
    SELECT e.image_id, e.embedding::halfvec({dim}) <=> %(query)s::halfvec({dim}) AS distance
    FROM image_embeddings e JOIN images i ON i.image_id = e.image_id
    WHERE e.model_version = %(model_version)s AND i.status = 'ok'
    ORDER BY e.embedding::halfvec({dim}) <=> %(query)s::halfvec({dim})
    LIMIT %(k)s)
SELECT image_id, distance FROM hits ORDER BY distance, image_id;

-- name: nearest_images_filtered
-- The same index scan with the filters checked per row (`image_filters`); hnsw.iterative_scan keeps
-- it going until k rows pass them or max_scan_tuples are visited.
WITH hits AS MATERIALIZED (
    SELECT e.image_id, e.embedding::halfvec({dim}) <=> %(query)s::halfvec({dim}) AS distance
    FROM image_embeddings e JOIN images i ON i.image_id = e.image_id
    WHERE e.model_version = %(model_version)s AND {filters}
    ORDER BY e.embedding::halfvec({dim}) <=> %(query)s::halfvec({dim})
    LIMIT %(k)s)
SELECT image_id, distance FROM hits ORDER BY distance, image_id;

-- name: nearest_images_exact
-- The same ranking without the HNSW index, for filters that leave few images (by the planner's
-- estimate of `estimate_filtered_images`) or that few images near the query pass (the index scan
-- came back short): exact distances to every image that passes the filters (`filter_*` fragments,
-- so the planner starts from the most selective one), best k. The OFFSET 0 subquery has no ORDER
-- BY, so the vector index is of no use to it. bench/search.py, 100,000 images, a tag on 1 in 100 of
-- them: p50 13 ms, against 81 ms for the index scan with a 20,000-tuple budget (which also found
-- only about half of the true nearest 50).
WITH hits AS MATERIALIZED (
    SELECT image_id, distance
    FROM (SELECT e.image_id, e.embedding::halfvec({dim}) <=> %(query)s::halfvec({dim}) AS distance
          FROM image_embeddings e JOIN images i ON i.image_id = e.image_id
          WHERE e.model_version = %(model_version)s AND {filters}
          OFFSET 0) d
    ORDER BY distance
    LIMIT %(k)s)
SELECT image_id, distance FROM hits ORDER BY distance, image_id;

-- name: nearest_images_exact_sets
-- The exact ranking when a tag or a category filter is on: the images passing each of them as a set
-- of ids (`ids_tag`, `ids_category`, intersected), read from indexes alone; then, unless
-- ids_category already applied them, the other filters on each id's images row
-- (`exact_sets_residual`); then the survivors' vectors. bench/search.py, 500,000 images, all four
-- filters (a tag on 34,000 images, a category of 39,000, the last year, duplicates hidden; 1,231
-- images pass): 24 ms, where `nearest_images_exact` took 168 ms before sql/016_search_facets.sql
-- (a scan of images testing the category per row) and 42 ms after.
WITH ids AS MATERIALIZED ({sets}),
hits AS MATERIALIZED (
    SELECT image_id, distance
    FROM (SELECT e.image_id, e.embedding::halfvec({dim}) <=> %(query)s::halfvec({dim}) AS distance
          FROM ids
          {residual}
          JOIN image_embeddings e ON e.model_version = %(model_version)s AND e.image_id = ids.image_id
          OFFSET 0) d
    ORDER BY distance
    LIMIT %(k)s)
SELECT image_id, distance FROM hits ORDER BY distance, image_id;

-- name: estimate_filtered_images
-- The planner's estimate of how many images pass the filters (`filter_*`): nothing is read.
EXPLAIN (FORMAT JSON) SELECT 1 FROM images i WHERE {filters};

-- name: describe_images
SELECT i.image_id, i.image_key, i.platform, i.username, i.thumb_key, i.taken_at
FROM images i
WHERE i.image_id = ANY(%(ids)s);

-- name: search_facets_drift
-- Images whose copies of the search filters (sql/016_search_facets.sql) disagree with their sources:
-- the creator's category, the post's date, a pair naming the image as its larger key. 0 when the
-- promotion and the triggers have kept them (the tests check it after every kind of change).
SELECT i.image_key, i.creator_category, i.taken_at, i.is_duplicate
FROM images i
LEFT JOIN creators c ON c.platform = i.platform AND c.username = i.username
LEFT JOIN posts p ON p.platform = i.platform AND p.post_id = i.post_id
WHERE (i.creator_category, i.taken_at, i.is_duplicate) IS DISTINCT FROM
      (lower(c.category), p.taken_at, EXISTS (SELECT 1 FROM image_duplicates d WHERE d.image_key_b = i.image_key))
ORDER BY i.image_key;
