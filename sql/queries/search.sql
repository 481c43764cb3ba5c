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
-- * `ids_*`: the tag and category filters as sets of image ids, for the exact ranking
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

-- name: estimate_category
-- The category filter as the planner should estimate it (estimate_filtered_images only): the
-- creator's category. filter_category's OR with the objects' images made the planner guess half
-- of all images (270,000 for a category of 41,000 at 500,000 images), so VectorSearch.estimates adds
-- the objects' rows (`estimate_category_objects`) itself.
i.creator_category = lower(%(category)s)

-- name: estimate_category_objects
EXPLAIN (FORMAT JSON) SELECT 1 FROM detected_objects o WHERE lower(o.category) = lower(%(category)s);

-- name: filter_dates
(%(date_from)s::timestamptz IS NULL OR i.taken_at >= %(date_from)s)
AND (%(date_to)s::timestamptz IS NULL OR i.taken_at < %(date_to)s)

-- name: filter_hide_duplicates
NOT i.is_duplicate

-- name: ids_tag
-- The images carrying the tag, for nearest_images_exact_sets: the version's present rows and the
-- reviewers' "yes" rows, one range of image_tags_tag_rank_idx read from the index alone (a model
-- row has a version and a reviewer row has none: image_tags' CHECKs). The reviewers' "no"
-- (`ids_tag_vetoed`) is taken out after the intersection with the other sets, so the veto is a
-- hash of a few hundred ids, not a test on each of the tag's rows (effective_image_tags' NOT EXISTS:
-- a tag on 112,000 images in 20 ms, against 8 ms for the range alone, at 500,000 images).
-- VectorSearch.tag_rows reads the planner's estimate of its rows from its EXPLAIN: the planner's
-- estimate of the tag as a semi-join (an EXISTS per image) was half the tag's images for a rare tag.
SELECT t.image_id FROM image_tags t
WHERE t.tag_id = %(tag_id)s AND t.present AND t.model_version IN (%(model_version)s, '')
  AND t.source IN ('ai', 'user')

-- name: ids_tag_category
-- `ids_tag` within the category filter, for nearest_images_exact_sets with both filters on: the tag's
-- rows whose image's creator is in the category, one range of image_tags_tag_category_idx
-- (image_tags.creator_category, sql/017_tag_facets.sql), and the tag's rows on the images of the
-- category's objects. bench/search.py, 500,000 images: a tag on 148,000 images within a category of
-- 41,000, 12,000 index entries where ids_tag read all 148,000.
SELECT t.image_id FROM image_tags t
WHERE t.tag_id = %(tag_id)s AND t.creator_category = lower(%(category)s) AND t.present
  AND t.model_version IN (%(model_version)s, '') AND t.source IN ('ai', 'user')
UNION ALL
SELECT t.image_id FROM detected_objects o JOIN image_tags t ON t.image_id = o.image_id
WHERE lower(o.category) = lower(%(category)s) AND t.tag_id = %(tag_id)s AND t.present
  AND t.model_version IN (%(model_version)s, '') AND t.source IN ('ai', 'user')

-- name: ids_tag_vetoed
-- The images a reviewer said do not carry the tag (effective_image_tags: a reviewer's "no" beats
-- the model's row).
SELECT u.image_id FROM image_tags u WHERE u.tag_id = %(tag_id)s AND u.source = 'user' AND NOT u.present

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
-- nearest_images_exact_sets without ids_category (a tag alone): the other filters on each ranked
-- image's images row, nearest first, until k pass. Checked after the ranking, not before it: the
-- tag's images are ranked from their vectors alone and only the nearest are looked up, about k of
-- them when most pass (a tag alone: status 'ok' only). The OFFSET keeps the check a probe per image
-- (the planner cannot know how few it needs).
JOIN LATERAL (SELECT 1 FROM images i WHERE i.image_id = r.image_id AND {filters} OFFSET 0) i ON true

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
    FROM (SELECT e.image_id, e.embedding <=> %(query)s::halfvec({dim}) AS distance
          FROM image_embeddings e JOIN images i ON i.image_id = e.image_id
          WHERE e.model_version = %(model_version)s AND {filters}
          OFFSET 0) d
    ORDER BY distance
    LIMIT %(k)s)
SELECT image_id, distance FROM hits ORDER BY distance, image_id;

-- name: nearest_images_exact_sets
-- The exact ranking when a tag or a category filter is on: the images passing each of them as a set
-- of ids (`ids_category`, `ids_tag`, intersected, less `ids_tag_vetoed`), read from indexes alone and
-- sorted by image_id, so the vectors are looked up in the order of their index and heap; their
-- distances, nearest first (only the k nearest when ids_category applied every filter);
-- then, unless ids_category already applied them, the other filters on the nearest images' rows
-- (`exact_sets_residual`). The distance is the plain operator: no index serves this ranking, so the
-- cast to halfvec(dim) that the HNSW index's expression needs would only copy every vector (1 µs a
-- row). bench/search.py, 500,000 images, 40 queries: a tag on 6,362 images, p50 42 ms -> 21 ms (the
-- residual after the ranking, the sort, no cast); all four filters (the query's category and tag,
-- the last year, duplicates hidden; up to 5,800 images pass), p50 17 ms and at most 54 ms with the
-- tag's whole id set (148,000 entries for a common tag), 11 ms and 30 ms with ids_tag_category.
WITH ids AS MATERIALIZED (SELECT image_id FROM ({sets}) s ORDER BY image_id),
ranked AS MATERIALIZED (
    SELECT e.image_id, e.embedding <=> %(query)s::halfvec({dim}) AS distance
    FROM ids JOIN image_embeddings e ON e.model_version = %(model_version)s AND e.image_id = ids.image_id
    ORDER BY distance
    {ranked_limit}),
hits AS MATERIALIZED (
    SELECT r.image_id, r.distance FROM ranked r
    {residual}
    ORDER BY r.distance
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

-- name: tag_facets_drift
-- Tag rows whose copy of the creator's category (sql/017_tag_facets.sql) disagrees with their
-- image's. 0 when the triggers have kept it.
SELECT i.image_key, t.tag_id, t.source, t.model_version, t.creator_category, i.creator_category
FROM image_tags t JOIN images i ON i.image_id = t.image_id
WHERE t.creator_category IS DISTINCT FROM i.creator_category
ORDER BY i.image_key, t.tag_id, t.source, t.model_version;
