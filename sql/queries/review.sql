-- The review queue: list pending items, and record a reviewer's decision (creatorlens.review).
-- Each decision runs in one transaction: the queue row is locked, 'user' tag rows and
-- tag_feedback rows are written, and the queue row is resolved.

-- name: pending
SELECT q.review_id, i.image_key, i.username, i.thumb_key, g.name, g.category, g.exclusive, q.reason,
       q.confidence, q.threshold, q.model_version, q.created_at
FROM tag_review_queue q
JOIN images i ON i.image_id = q.image_id
JOIN tags g ON g.tag_id = q.tag_id
WHERE q.status = 'pending' AND (%(model_version)s::text IS NULL OR q.model_version = %(model_version)s)
ORDER BY q.created_at, q.review_id
LIMIT %(limit)s;

-- name: claim
SELECT q.review_id, q.image_id, q.tag_id, q.model_version, q.confidence, q.status, i.image_key, g.name,
       g.category, g.exclusive
FROM tag_review_queue q
JOIN images i ON i.image_id = q.image_id
JOIN tags g ON g.tag_id = q.tag_id
WHERE q.review_id = %(review_id)s
FOR UPDATE OF q;

-- name: tag_by_name
SELECT tag_id, name, category, exclusive FROM tags WHERE name = %(tag)s;

-- name: ai_confidence
SELECT confidence FROM image_tags
WHERE image_id = %(image_id)s AND tag_id = %(tag_id)s AND source = 'ai' AND model_version = %(model_version)s;

-- name: exclusive_rivals
-- Other tags of the same exclusive category that the model assigned or queued on this image.
SELECT g.tag_id, g.name, max(x.confidence) AS confidence
FROM tags g
JOIN (SELECT tag_id, confidence FROM image_tags
      WHERE image_id = %(image_id)s AND source = 'ai' AND model_version = %(model_version)s
      UNION ALL
      SELECT tag_id, confidence FROM tag_review_queue
      WHERE image_id = %(image_id)s AND model_version = %(model_version)s) x ON x.tag_id = g.tag_id
WHERE g.category = %(category)s AND g.tag_id <> %(tag_id)s
GROUP BY g.tag_id, g.name
ORDER BY g.name;

-- name: set_user_tag
INSERT INTO image_tags (image_id, tag_id, source, model_version, present, review_id, reviewer)
VALUES (%(image_id)s, %(tag_id)s, 'user', '', %(present)s, %(review_id)s, %(reviewer)s)
ON CONFLICT (image_id, tag_id, source, model_version) DO UPDATE SET
    present = EXCLUDED.present, review_id = EXCLUDED.review_id, reviewer = EXCLUDED.reviewer, updated_at = now();

-- name: add_feedback
INSERT INTO tag_feedback (image_id, tag_id, label, action, review_id, model_version, confidence, reviewer, note)
VALUES (%(image_id)s, %(tag_id)s, %(label)s, %(action)s, %(review_id)s, %(model_version)s, %(confidence)s,
        %(reviewer)s, %(note)s)
RETURNING feedback_id;

-- name: resolve
UPDATE tag_review_queue SET status = %(status)s, resolved_at = now(), resolved_by = %(reviewer)s, updated_at = now()
WHERE review_id = %(review_id)s;

-- name: supersede
-- Pending items of the same image and model version for tags a decision just settled.
UPDATE tag_review_queue SET status = 'superseded', resolved_at = now(), resolved_by = %(reviewer)s, updated_at = now()
WHERE image_id = %(image_id)s AND model_version = %(model_version)s AND status = 'pending'
  AND tag_id = ANY(%(tag_ids)s) AND review_id IS DISTINCT FROM %(review_id)s;

-- name: record_model_answer
INSERT INTO image_tags (image_id, tag_id, source, model_version, present, confidence, review_id)
VALUES (%(image_id)s, %(tag_id)s, 'vlm', %(model)s, %(present)s, %(confidence)s, %(review_id)s)
ON CONFLICT (image_id, tag_id, source, model_version) DO UPDATE SET
    present = EXCLUDED.present, confidence = EXCLUDED.confidence, review_id = EXCLUDED.review_id, updated_at = now();

-- name: mark_escalated
UPDATE tag_review_queue SET escalated_at = now(), updated_at = now() WHERE review_id = %(review_id)s;

-- name: effective_tags
-- What an image carries for one model version (effective_image_tags: reviewer decisions win over
-- the model), with a reviewer's "no" as present = false.
SELECT g.name, g.category, t.present, t.source, t.confidence, t.model_version, t.threshold, t.reviewer
FROM effective_image_tags(%(model_version)s) t
JOIN tags g ON g.tag_id = t.tag_id
WHERE t.image_id = %(image_id)s
ORDER BY g.category, g.name;

-- name: image_id
SELECT image_id FROM images WHERE image_key = %(image_key)s;

-- name: image_for_edit
-- An image and the newest model version that tagged or queued it (NULL: no model has seen it).
SELECT i.image_id,
       (SELECT m.model_version FROM embedding_models m
        WHERE EXISTS (SELECT 1 FROM image_embeddings e WHERE e.image_id = i.image_id AND e.model_version = m.model_version)
        ORDER BY m.created_at DESC LIMIT 1)
FROM images i WHERE i.image_key = %(image_key)s;

-- name: create_user_tag
INSERT INTO tags (name, category, exclusive, description, origin)
VALUES (%(tag)s, 'custom', false, %(description)s, 'user')
ON CONFLICT (name) DO NOTHING;

-- name: pending_item
SELECT review_id FROM tag_review_queue
WHERE image_id = %(image_id)s AND tag_id = %(tag_id)s AND status = 'pending'
ORDER BY created_at DESC, review_id DESC LIMIT 1;

-- name: flag_image
INSERT INTO image_flags (image_id, reason, flagged_by)
SELECT image_id, %(reason)s, %(reviewer)s FROM images WHERE image_key = %(image_key)s
ON CONFLICT (image_id) WHERE resolved_at IS NULL DO UPDATE SET
    reason = EXCLUDED.reason, flagged_by = EXCLUDED.flagged_by, created_at = now()
RETURNING flag_id;

-- name: item_scope
-- The image, model version and category of one queue item (review.py's lock order).
SELECT q.image_id, q.model_version, g.category, g.exclusive
FROM tag_review_queue q JOIN tags g ON g.tag_id = q.tag_id
WHERE q.review_id = %(review_id)s;

-- name: lock_category
-- Every queue item of one image, model version and category, locked lowest review_id first, so two
-- decisions settling the same exclusive category wait for each other instead of deadlocking.
SELECT q.review_id
FROM tag_review_queue q JOIN tags g ON g.tag_id = q.tag_id
WHERE q.image_id = %(image_id)s AND q.model_version IS NOT DISTINCT FROM %(model_version)s
  AND g.category = %(category)s
ORDER BY q.review_id
FOR UPDATE OF q;

