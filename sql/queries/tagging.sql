-- Reads and writes of the tagging assets outside the batch promotion (thresholds, labels).

-- name: calibrated_thresholds
-- Only thresholds calibrated for this model version on this taxonomy version apply.
SELECT g.name, t.threshold
FROM tag_thresholds t JOIN tags g ON g.tag_id = t.tag_id
WHERE t.model_version = %(model_version)s AND t.taxonomy_version = %(taxonomy_version)s;

-- name: feedback_labels
-- The latest reviewer decision per (image, tag).
SELECT DISTINCT ON (f.image_id, f.tag_id) i.image_key, g.name AS tag, f.label
FROM tag_feedback f JOIN images i ON i.image_id = f.image_id JOIN tags g ON g.tag_id = f.tag_id
ORDER BY f.image_id, f.tag_id, f.created_at DESC, f.feedback_id DESC;

-- name: embeddings_for
SELECT i.image_key, e.embedding
FROM image_embeddings e JOIN images i ON i.image_id = e.image_id
WHERE e.model_version = %(model_version)s AND i.image_key = ANY(%(image_keys)s);

-- name: upsert_threshold
INSERT INTO tag_thresholds AS t (model_version, tag_id, threshold, method, precision, recall, f1, positives,
                                 negatives, taxonomy_version)
SELECT %(model_version)s, g.tag_id, %(threshold)s, %(method)s, %(precision)s, %(recall)s, %(f1)s, %(positives)s,
       %(negatives)s, %(taxonomy_version)s
FROM tags g WHERE g.name = %(tag)s
ON CONFLICT (model_version, tag_id) DO UPDATE SET
    threshold = EXCLUDED.threshold, method = EXCLUDED.method, precision = EXCLUDED.precision,
    recall = EXCLUDED.recall, f1 = EXCLUDED.f1, positives = EXCLUDED.positives, negatives = EXCLUDED.negatives,
    taxonomy_version = EXCLUDED.taxonomy_version, computed_at = now();
