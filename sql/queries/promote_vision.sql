-- Promotion of one batch's vision results. Every statement runs inside ONE transaction opened by
-- creatorlens.vision_promotion.promote_vision(), after warehouse/promoted_batch wrote the images
-- these rows reference. Upserts are keyed on natural keys ((image_key, person_idx), …) and skip
-- rows that did not change; rows of this batch that the new run no longer produced are removed.

-- name: lock_batch
SELECT pg_advisory_xact_lock(hashtextextended('vision:' || %(batch_key)s, 0));

-- name: create_stage
CREATE TEMP TABLE stage_image_vision (
    image_key text, persons_status text, persons_reason text, faces_status text, faces_reason text,
    ocr_status text, ocr_reason text, person_count smallint, face_count smallint, text_lines smallint,
    shot_type text, framing text, pose_visibility real, relative_face_size real, rule_tags text[],
    rules_version text, model_versions jsonb
) ON COMMIT DROP;
CREATE TEMP TABLE stage_persons (
    image_key text, person_idx smallint, x1 real, y1 real, x2 real, y2 real, score real,
    crop_x1 real, crop_y1 real, crop_x2 real, crop_y2 real, crop_key text, crop_width integer,
    crop_height integer, pose_status text, mask_area real, fill_ratio real, aspect_ratio real,
    model_version text, segmentation_version text
) ON COMMIT DROP;
CREATE TEMP TABLE stage_keypoints (
    image_key text, person_idx smallint, x real[], y real[], z real[], visibility real[],
    visible_count smallint, visibility_score real, model_version text
) ON COMMIT DROP;
CREATE TEMP TABLE stage_ocr_texts (
    image_key text, line_idx smallint, text text, confidence real, box real[], model_version text
) ON COMMIT DROP;
CREATE TEMP TABLE stage_faces (
    image_key text, face_idx smallint, platform text, username text, x1 real, y1 real, x2 real, y2 real,
    score real, keypoints real[], embedding text, embedding_model text, cluster_id integer, model_version text
) ON COMMIT DROP;

-- name: upsert_image_vision
INSERT INTO image_vision AS t (image_key, batch_key, persons_status, persons_reason, faces_status, faces_reason,
                               ocr_status, ocr_reason, person_count, face_count, text_lines, shot_type, framing,
                               pose_visibility, relative_face_size, rule_tags, rules_version, model_versions)
SELECT image_key, %(batch_key)s, persons_status, persons_reason, faces_status, faces_reason, ocr_status,
       ocr_reason, person_count, face_count, text_lines, shot_type, framing, pose_visibility,
       relative_face_size, coalesce(rule_tags, '{}'), rules_version, model_versions
FROM stage_image_vision
ON CONFLICT (image_key) DO UPDATE SET
    batch_key = EXCLUDED.batch_key, persons_status = EXCLUDED.persons_status,
    persons_reason = EXCLUDED.persons_reason, faces_status = EXCLUDED.faces_status,
    faces_reason = EXCLUDED.faces_reason, ocr_status = EXCLUDED.ocr_status, ocr_reason = EXCLUDED.ocr_reason,
    person_count = EXCLUDED.person_count, face_count = EXCLUDED.face_count, text_lines = EXCLUDED.text_lines,
    shot_type = EXCLUDED.shot_type, framing = EXCLUDED.framing, pose_visibility = EXCLUDED.pose_visibility,
    relative_face_size = EXCLUDED.relative_face_size, rule_tags = EXCLUDED.rule_tags,
    rules_version = EXCLUDED.rules_version, model_versions = EXCLUDED.model_versions, updated_at = now()
WHERE (t.batch_key, t.persons_status, t.persons_reason, t.faces_status, t.faces_reason, t.ocr_status,
       t.ocr_reason, t.person_count, t.face_count, t.text_lines, t.shot_type, t.framing, t.pose_visibility,
       t.relative_face_size, t.rule_tags, t.rules_version, t.model_versions)
      IS DISTINCT FROM
      (EXCLUDED.batch_key, EXCLUDED.persons_status, EXCLUDED.persons_reason, EXCLUDED.faces_status,
       EXCLUDED.faces_reason, EXCLUDED.ocr_status, EXCLUDED.ocr_reason, EXCLUDED.person_count,
       EXCLUDED.face_count, EXCLUDED.text_lines, EXCLUDED.shot_type, EXCLUDED.framing, EXCLUDED.pose_visibility,
       EXCLUDED.relative_face_size, EXCLUDED.rule_tags, EXCLUDED.rules_version, EXCLUDED.model_versions);

-- name: delete_stale_image_vision
DELETE FROM image_vision t
WHERE t.batch_key = %(batch_key)s
  AND NOT EXISTS (SELECT 1 FROM stage_image_vision s WHERE s.image_key = t.image_key);

-- name: upsert_persons
INSERT INTO persons AS t (image_key, person_idx, batch_key, x1, y1, x2, y2, score, crop_x1, crop_y1, crop_x2,
                          crop_y2, crop_key, crop_width, crop_height, pose_status, mask_area, fill_ratio,
                          aspect_ratio, model_version, segmentation_version)
SELECT image_key, person_idx, %(batch_key)s, x1, y1, x2, y2, score, crop_x1, crop_y1, crop_x2, crop_y2, crop_key,
       crop_width, crop_height, pose_status, mask_area, fill_ratio, aspect_ratio, model_version,
       segmentation_version
FROM stage_persons
ON CONFLICT (image_key, person_idx) DO UPDATE SET
    batch_key = EXCLUDED.batch_key, x1 = EXCLUDED.x1, y1 = EXCLUDED.y1, x2 = EXCLUDED.x2, y2 = EXCLUDED.y2,
    score = EXCLUDED.score, crop_x1 = EXCLUDED.crop_x1, crop_y1 = EXCLUDED.crop_y1, crop_x2 = EXCLUDED.crop_x2,
    crop_y2 = EXCLUDED.crop_y2, crop_key = EXCLUDED.crop_key, crop_width = EXCLUDED.crop_width,
    crop_height = EXCLUDED.crop_height, pose_status = EXCLUDED.pose_status, mask_area = EXCLUDED.mask_area,
    fill_ratio = EXCLUDED.fill_ratio, aspect_ratio = EXCLUDED.aspect_ratio,
    model_version = EXCLUDED.model_version, segmentation_version = EXCLUDED.segmentation_version,
    updated_at = now()
WHERE (t.batch_key, t.x1, t.y1, t.x2, t.y2, t.score, t.crop_x1, t.crop_y1, t.crop_x2, t.crop_y2, t.crop_key,
       t.crop_width, t.crop_height, t.pose_status, t.mask_area, t.fill_ratio, t.aspect_ratio, t.model_version,
       t.segmentation_version)
      IS DISTINCT FROM
      (EXCLUDED.batch_key, EXCLUDED.x1, EXCLUDED.y1, EXCLUDED.x2, EXCLUDED.y2, EXCLUDED.score, EXCLUDED.crop_x1,
       EXCLUDED.crop_y1, EXCLUDED.crop_x2, EXCLUDED.crop_y2, EXCLUDED.crop_key, EXCLUDED.crop_width,
       EXCLUDED.crop_height, EXCLUDED.pose_status, EXCLUDED.mask_area, EXCLUDED.fill_ratio, EXCLUDED.aspect_ratio,
       EXCLUDED.model_version, EXCLUDED.segmentation_version);

-- name: delete_stale_persons
DELETE FROM persons t
WHERE t.batch_key = %(batch_key)s
  AND NOT EXISTS (SELECT 1 FROM stage_persons s WHERE s.image_key = t.image_key AND s.person_idx = t.person_idx);

-- name: upsert_keypoints
INSERT INTO keypoints AS t (image_key, person_idx, batch_key, x, y, z, visibility, visible_count,
                            visibility_score, model_version)
SELECT image_key, person_idx, %(batch_key)s, x, y, z, visibility, visible_count, visibility_score, model_version
FROM stage_keypoints
ON CONFLICT (image_key, person_idx) DO UPDATE SET
    batch_key = EXCLUDED.batch_key, x = EXCLUDED.x, y = EXCLUDED.y, z = EXCLUDED.z,
    visibility = EXCLUDED.visibility, visible_count = EXCLUDED.visible_count,
    visibility_score = EXCLUDED.visibility_score, model_version = EXCLUDED.model_version, updated_at = now()
WHERE (t.batch_key, t.x, t.y, t.z, t.visibility, t.visible_count, t.visibility_score, t.model_version)
      IS DISTINCT FROM
      (EXCLUDED.batch_key, EXCLUDED.x, EXCLUDED.y, EXCLUDED.z, EXCLUDED.visibility, EXCLUDED.visible_count,
       EXCLUDED.visibility_score, EXCLUDED.model_version);

-- name: delete_stale_keypoints
DELETE FROM keypoints t
WHERE t.batch_key = %(batch_key)s
  AND NOT EXISTS (SELECT 1 FROM stage_keypoints s WHERE s.image_key = t.image_key AND s.person_idx = t.person_idx);

-- name: upsert_ocr_texts
INSERT INTO ocr_texts AS t (image_key, line_idx, batch_key, text, confidence, box, model_version)
SELECT image_key, line_idx, %(batch_key)s, text, confidence, box, model_version FROM stage_ocr_texts
ON CONFLICT (image_key, line_idx) DO UPDATE SET
    batch_key = EXCLUDED.batch_key, text = EXCLUDED.text, confidence = EXCLUDED.confidence, box = EXCLUDED.box,
    model_version = EXCLUDED.model_version, updated_at = now()
WHERE (t.batch_key, t.text, t.confidence, t.box, t.model_version)
      IS DISTINCT FROM (EXCLUDED.batch_key, EXCLUDED.text, EXCLUDED.confidence, EXCLUDED.box, EXCLUDED.model_version);

-- name: delete_stale_ocr_texts
DELETE FROM ocr_texts t
WHERE t.batch_key = %(batch_key)s
  AND NOT EXISTS (SELECT 1 FROM stage_ocr_texts s WHERE s.image_key = t.image_key AND s.line_idx = t.line_idx);

-- name: upsert_faces
INSERT INTO faces AS t (image_key, face_idx, batch_key, platform, username, x1, y1, x2, y2, score, keypoints,
                        embedding, embedding_model, cluster_id, model_version)
SELECT image_key, face_idx, %(batch_key)s, platform, username, x1, y1, x2, y2, score, keypoints,
       embedding::halfvec(512), embedding_model, cluster_id, model_version
FROM stage_faces
ON CONFLICT (image_key, face_idx) DO UPDATE SET
    batch_key = EXCLUDED.batch_key, platform = EXCLUDED.platform, username = EXCLUDED.username,
    x1 = EXCLUDED.x1, y1 = EXCLUDED.y1, x2 = EXCLUDED.x2, y2 = EXCLUDED.y2, score = EXCLUDED.score,
    keypoints = EXCLUDED.keypoints, embedding = EXCLUDED.embedding, embedding_model = EXCLUDED.embedding_model,
    cluster_id = EXCLUDED.cluster_id, model_version = EXCLUDED.model_version, updated_at = now()
WHERE (t.batch_key, t.platform, t.username, t.x1, t.y1, t.x2, t.y2, t.score, t.keypoints, t.embedding,
       t.embedding_model, t.cluster_id, t.model_version)
      IS DISTINCT FROM
      (EXCLUDED.batch_key, EXCLUDED.platform, EXCLUDED.username, EXCLUDED.x1, EXCLUDED.y1, EXCLUDED.x2,
       EXCLUDED.y2, EXCLUDED.score, EXCLUDED.keypoints, EXCLUDED.embedding, EXCLUDED.embedding_model,
       EXCLUDED.cluster_id, EXCLUDED.model_version);

-- name: delete_stale_faces
DELETE FROM faces t
WHERE t.batch_key = %(batch_key)s
  AND NOT EXISTS (SELECT 1 FROM stage_faces s WHERE s.image_key = t.image_key AND s.face_idx = t.face_idx);

-- name: record_promotion
-- Same run as warehouse/promoted_batch: the vision counts join that run's promotions row.
INSERT INTO promotions (batch_key, run_id, code_version, counts)
VALUES (%(batch_key)s, %(run_id)s, %(code_version)s, jsonb_build_object('vision', %(counts)s::jsonb))
ON CONFLICT (batch_key, run_id) DO UPDATE SET counts = promotions.counts || EXCLUDED.counts, promoted_at = now();

-- name: resolve_flags
-- Reviewers' re-analysis flags on this batch's images, raised before this run began, are answered
-- by this promotion; a flag raised while the run was going stays open for the next one.
UPDATE image_flags f SET resolved_at = now(), resolved_run_id = %(run_id)s
FROM images i
WHERE i.image_id = f.image_id AND i.batch_key = %(batch_key)s AND f.resolved_at IS NULL
  AND f.created_at < %(flags_before)s;
