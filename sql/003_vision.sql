-- 003: what the vision stages found in each image: people (boxes, crops, silhouettes), their pose
-- keypoints, text lines (full-text searchable), faces (embeddings, per-creator clusters), and per image
-- the stage statuses, derived features and rule tags. Every row names the model that produced it.
-- Rows hang off images(image_key) and go when their image goes (ON DELETE CASCADE), so the backbone's
-- removal of stale images never trips over them.

-- One row per ok image: each stage's outcome (never a silent drop) and the derived features.
CREATE TABLE IF NOT EXISTS image_vision (
    image_key          text        PRIMARY KEY REFERENCES images (image_key) ON DELETE CASCADE,
    batch_key          text        NOT NULL,
    persons_status     text        NOT NULL CHECK (persons_status IN ('ok', 'no_person', 'too_small', 'failed')),
    persons_reason     text,
    faces_status       text        NOT NULL CHECK (faces_status IN ('ok', 'no_face', 'too_small', 'failed')),
    faces_reason       text,
    ocr_status         text        NOT NULL CHECK (ocr_status IN ('ok', 'no_text', 'too_small', 'failed')),
    ocr_reason         text,
    person_count       smallint    NOT NULL CHECK (person_count >= 0),
    face_count         smallint    NOT NULL CHECK (face_count >= 0),
    text_lines         smallint    NOT NULL CHECK (text_lines >= 0),
    shot_type          text        NOT NULL CHECK (shot_type IN ('close-up', 'half-body', 'full-body', 'unknown')),
    framing            text        NOT NULL CHECK (framing IN ('left', 'center', 'right', 'none')),
    pose_visibility    real        CHECK (pose_visibility BETWEEN 0 AND 1),
    relative_face_size real        CHECK (relative_face_size BETWEEN 0 AND 1),
    rule_tags          text[]      NOT NULL DEFAULT '{}',
    rules_version      text        NOT NULL,
    model_versions     jsonb       NOT NULL,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CHECK (persons_status = 'ok' OR persons_reason IS NOT NULL),
    CHECK (faces_status = 'ok' OR faces_reason IS NOT NULL),
    CHECK (ocr_status = 'ok' OR ocr_reason IS NOT NULL)
);
CREATE INDEX IF NOT EXISTS image_vision_batch_key_idx ON image_vision (batch_key);
CREATE INDEX IF NOT EXISTS image_vision_rule_tags_idx ON image_vision USING gin (rule_tags);
-- Stage failures are what people look up; successes need no index.
CREATE INDEX IF NOT EXISTS image_vision_failed_idx ON image_vision (image_key)
    WHERE persons_status = 'failed' OR faces_status = 'failed' OR ocr_status = 'failed';

-- A detected person: box and crop in image pixels, the crop's blob, silhouette statistics
-- (no mask pixels), and whether a pose was found on the crop.
CREATE TABLE IF NOT EXISTS persons (
    image_key            text        NOT NULL REFERENCES images (image_key) ON DELETE CASCADE,
    person_idx           smallint    NOT NULL CHECK (person_idx >= 0),
    batch_key            text        NOT NULL,
    x1                   real        NOT NULL,
    y1                   real        NOT NULL,
    x2                   real        NOT NULL,
    y2                   real        NOT NULL,
    score                real        NOT NULL CHECK (score BETWEEN 0 AND 1),
    crop_x1              real        NOT NULL,
    crop_y1              real        NOT NULL,
    crop_x2              real        NOT NULL,
    crop_y2              real        NOT NULL,
    crop_key             text        NOT NULL,
    crop_width           integer     NOT NULL CHECK (crop_width > 0),
    crop_height          integer     NOT NULL CHECK (crop_height > 0),
    pose_status          text        CHECK (pose_status IN ('ok', 'no_pose', 'failed')),
    mask_area            real        CHECK (mask_area BETWEEN 0 AND 1),
    fill_ratio           real        CHECK (fill_ratio BETWEEN 0 AND 1),
    aspect_ratio         real        CHECK (aspect_ratio >= 0),
    model_version        text        NOT NULL,
    segmentation_version text,
    updated_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (image_key, person_idx),
    CHECK (x1 >= 0 AND y1 >= 0 AND x1 < x2 AND y1 < y2),
    CHECK (crop_x1 <= x1 AND crop_y1 <= y1 AND crop_x2 >= x2 AND crop_y2 >= y2)
);
CREATE INDEX IF NOT EXISTS persons_batch_key_idx ON persons (batch_key);

-- MediaPipe's 33 landmarks per person, in image pixels; a landmark outside the crop has NULL x/y
-- and visibility 0.
CREATE TABLE IF NOT EXISTS keypoints (
    image_key        text        NOT NULL,
    person_idx       smallint    NOT NULL,
    batch_key        text        NOT NULL,
    x                real[]      NOT NULL CHECK (cardinality(x) = 33),
    y                real[]      NOT NULL CHECK (cardinality(y) = 33),
    z                real[]      NOT NULL CHECK (cardinality(z) = 33),
    visibility       real[]      NOT NULL CHECK (cardinality(visibility) = 33
                                                AND 0 <= ALL (visibility) AND 1 >= ALL (visibility)),
    visible_count    smallint    NOT NULL CHECK (visible_count BETWEEN 0 AND 33),
    visibility_score real        NOT NULL CHECK (visibility_score BETWEEN 0 AND 1),
    model_version    text        NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (image_key, person_idx),
    FOREIGN KEY (image_key, person_idx) REFERENCES persons (image_key, person_idx) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS keypoints_batch_key_idx ON keypoints (batch_key);

-- Text lines, searchable: tsv is generated from text ('simple' config: captions mix languages).
CREATE TABLE IF NOT EXISTS ocr_texts (
    image_key     text        NOT NULL REFERENCES images (image_key) ON DELETE CASCADE,
    line_idx      smallint    NOT NULL CHECK (line_idx >= 0),
    batch_key     text        NOT NULL,
    text          text        NOT NULL CHECK (text <> ''),
    confidence    real        NOT NULL CHECK (confidence BETWEEN 0 AND 1),
    box           real[]      NOT NULL CHECK (cardinality(box) = 8),
    model_version text        NOT NULL,
    tsv           tsvector    GENERATED ALWAYS AS (to_tsvector('simple', text)) STORED,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (image_key, line_idx)
);
CREATE INDEX IF NOT EXISTS ocr_texts_tsv_idx ON ocr_texts USING gin (tsv);
CREATE INDEX IF NOT EXISTS ocr_texts_batch_key_idx ON ocr_texts (batch_key);

-- Faces: box, detector keypoints (6 x/y pairs), ArcFace embedding when its weights were present
-- (NULL otherwise, with embedding_model NULL too) and the identity cluster within the creator
-- (NULL: not embedded, or seen too rarely to form a cluster).
CREATE TABLE IF NOT EXISTS faces (
    image_key       text        NOT NULL REFERENCES images (image_key) ON DELETE CASCADE,
    face_idx        smallint    NOT NULL CHECK (face_idx >= 0),
    batch_key       text        NOT NULL,
    platform        text        NOT NULL,
    username        text        NOT NULL,
    x1              real        NOT NULL,
    y1              real        NOT NULL,
    x2              real        NOT NULL,
    y2              real        NOT NULL,
    score           real        NOT NULL CHECK (score BETWEEN 0 AND 1),
    keypoints       real[]      NOT NULL CHECK (cardinality(keypoints) = 12),
    embedding       halfvec(512),
    embedding_model text,
    cluster_id      integer     CHECK (cluster_id >= 0),
    model_version   text        NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (image_key, face_idx),
    CHECK (x1 >= 0 AND y1 >= 0 AND x1 < x2 AND y1 < y2),
    CHECK ((embedding IS NULL) = (embedding_model IS NULL)),
    CHECK (cluster_id IS NULL OR embedding IS NOT NULL)
);
CREATE INDEX IF NOT EXISTS faces_batch_key_idx ON faces (batch_key);
CREATE INDEX IF NOT EXISTS faces_creator_cluster_idx ON faces (platform, username, cluster_id);
CREATE INDEX IF NOT EXISTS faces_embedding_idx ON faces USING hnsw (embedding halfvec_cosine_ops)
    WHERE embedding IS NOT NULL;
