-- The creator role (app.creator_control, app.auth.create_creator_user): an app account linked to
-- one creator sees that creator's images and tags and disputes tags; a dispute is a review item.

-- name: upsert_creator_user
-- No row: the creator is not in the warehouse. existed: this was a reset of an existing account.
INSERT INTO app_users (username, role, password_hash, creator_id)
SELECT %(username)s, 'creator', %(password_hash)s, c.creator_id
FROM creators c WHERE c.platform = %(platform)s AND c.username = %(creator)s
ON CONFLICT (username) DO UPDATE SET role = 'creator', creator_id = EXCLUDED.creator_id,
                                     password_hash = EXCLUDED.password_hash
RETURNING user_id, (xmax <> 0) AS existed;

-- name: linked_creator
SELECT c.creator_id, c.platform, c.username, c.full_name
FROM app_users u JOIN creators c ON c.creator_id = u.creator_id
WHERE u.user_id = %(user_id)s AND u.role = 'creator';

-- name: newest_model_version
SELECT model_version FROM embedding_models ORDER BY created_at DESC, model_version LIMIT 1;

-- name: own_images
SELECT i.image_id, i.image_key, i.thumb_key, i.rank, p.taken_at, p.caption
FROM images i LEFT JOIN posts p ON p.platform = i.platform AND p.post_id = i.post_id
WHERE i.platform = %(platform)s AND i.username = %(username)s AND i.status = 'ok'
ORDER BY i.rank, i.image_key;

-- name: creator_image_tags
-- The tags the creator's images carry now (a reviewer's decision wins over the model).
SELECT t.image_id, g.name, g.category, t.source, t.confidence
FROM images i
JOIN effective_image_tags(%(model_version)s) t ON t.image_id = i.image_id AND t.present
JOIN tags g ON g.tag_id = t.tag_id
WHERE i.platform = %(platform)s AND i.username = %(username)s
ORDER BY t.image_id, g.category, g.name;

-- name: creator_disputes
SELECT d.dispute_id, i.image_key, g.name AS tag, d.note, d.created_at, d.review_id,
       coalesce(q.status, 'removed') AS status, q.resolved_at
FROM tag_disputes d
JOIN images i ON i.image_id = d.image_id
JOIN tags g ON g.tag_id = d.tag_id
LEFT JOIN tag_review_queue q ON q.review_id = d.review_id
WHERE d.creator_id = %(creator_id)s
ORDER BY d.created_at DESC, d.dispute_id DESC;

-- name: own_image
SELECT i.image_id FROM images i
WHERE i.image_key = %(image_key)s AND i.platform = %(platform)s AND i.username = %(username)s;

-- name: own_thumb
SELECT 1 FROM images i
WHERE i.platform = %(platform)s AND i.username = %(username)s AND (i.thumb_key = %(key)s);

-- name: disputed_tag
-- The tag on the image as the model version scored it (NULL columns: a reviewer added it).
SELECT g.tag_id, a.model_version, a.confidence, a.threshold, a.taxonomy_version,
       EXISTS (SELECT 1 FROM effective_image_tags(%(model_version)s) t
               WHERE t.image_id = %(image_id)s AND t.tag_id = g.tag_id AND t.present) AS carried
FROM tags g
LEFT JOIN LATERAL (SELECT model_version, confidence, threshold, taxonomy_version FROM image_tags
                   WHERE image_id = %(image_id)s AND tag_id = g.tag_id AND source = 'ai'
                   ORDER BY (model_version = %(model_version)s) DESC, updated_at DESC LIMIT 1) a ON true
WHERE g.name = %(tag)s;

-- name: latest_taxonomy
SELECT taxonomy_version FROM tag_taxonomies ORDER BY first_seen_at DESC LIMIT 1;

-- name: open_dispute_item
-- The dispute's review item: a new pending one, or the pair's existing item reopened (whatever a
-- reviewer or the model said before, a person looks again). The tag changes only when they decide.
INSERT INTO tag_review_queue AS q (image_id, tag_id, model_version, reason, confidence, threshold, review_floor,
                                   taxonomy_version, batch_key)
SELECT i.image_id, %(tag_id)s, %(model_version)s, 'creator_dispute', %(confidence)s, %(threshold)s, 0,
       %(taxonomy_version)s, i.batch_key
FROM images i WHERE i.image_id = %(image_id)s
ON CONFLICT (image_id, tag_id, model_version) DO UPDATE SET
    reason = 'creator_dispute', status = 'pending', resolved_at = NULL, resolved_by = NULL, updated_at = now()
RETURNING review_id;

-- name: add_dispute
INSERT INTO tag_disputes (image_id, tag_id, creator_id, disputed_by, note, review_id)
VALUES (%(image_id)s, %(tag_id)s, %(creator_id)s, %(disputed_by)s, %(note)s, %(review_id)s)
RETURNING dispute_id;
