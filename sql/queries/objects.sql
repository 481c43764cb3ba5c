-- Object tags (assets.vision.objects): the detector's objects per image, their category from
-- tag_category_map, and the re-map after an edit of the map (job remap_object_categories).

-- name: delete_batch_version
-- A re-run replaces the batch's rows of that model version (same rows again: nothing duplicated).
DELETE FROM detected_objects d USING images i
WHERE d.image_id = i.image_id AND i.batch_key = %(batch_key)s AND d.model_version = %(model_version)s;

-- name: insert_objects
-- Parallel arrays, one element per object; the category is the map's at the time of writing.
INSERT INTO detected_objects (image_id, model_version, object_idx, label, confidence, x1, y1, x2, y2, category,
                              batch_key)
SELECT i.image_id, %(model_version)s, u.idx, u.label, u.conf, u.x1, u.y1, u.x2, u.y2, m.category, %(batch_key)s
FROM unnest(%(image_keys)s::text[], %(idx)s::int[], %(labels)s::text[], %(conf)s::real[], %(x1)s::real[],
            %(y1)s::real[], %(x2)s::real[], %(y2)s::real[]) AS u(image_key, idx, label, conf, x1, y1, x2, y2)
JOIN images i ON i.image_key = u.image_key AND i.batch_key = %(batch_key)s
LEFT JOIN tag_category_map m ON m.label = u.label;

-- name: category_counts
-- Objects per category ('(unmapped)': a label the map does not list).
SELECT coalesce(category, '(unmapped)') AS category, count(*) AS objects, count(DISTINCT image_id) AS images
FROM detected_objects GROUP BY 1 ORDER BY 1;

-- name: remap
-- Every stored object takes its label's category from the map now; rows already right are not touched.
UPDATE detected_objects d
SET category = (SELECT m.category FROM tag_category_map m WHERE m.label = d.label), updated_at = now()
WHERE d.category IS DISTINCT FROM (SELECT m.category FROM tag_category_map m WHERE m.label = d.label);

-- name: list_map
SELECT m.label, m.category, m.updated_by, m.updated_at,
       (SELECT count(*) FROM detected_objects d WHERE d.label = m.label) AS objects
FROM tag_category_map m ORDER BY m.category, m.label;

-- name: set_category
INSERT INTO tag_category_map (label, category, updated_by) VALUES (%(label)s, %(category)s, %(who)s)
ON CONFLICT (label) DO UPDATE SET category = EXCLUDED.category, updated_by = EXCLUDED.updated_by, updated_at = now()
RETURNING label, category, updated_by, updated_at;

-- name: stale_objects
-- Objects whose stored category differs from the map's (what the re-map job would change).
SELECT count(*) FROM detected_objects d
WHERE d.category IS DISTINCT FROM (SELECT m.category FROM tag_category_map m WHERE m.label = d.label);
