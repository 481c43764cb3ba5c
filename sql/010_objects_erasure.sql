-- 010: object tags with a re-mappable category map; creators in control (erasure tombstones, the
-- creator role, disputes).

-- ---- object tags ------------------------------------------------------------------------------
-- What an object detector found on an image (COCO labels for YOLOv8), one row per object and model
-- version. category is the label's category in tag_category_map when the row was last mapped
-- (NULL: the label is not mapped); the remap_object_categories job re-applies the map to every row
-- after an edit, reading no image.
CREATE TABLE IF NOT EXISTS detected_objects (
    image_id      bigint      NOT NULL REFERENCES images (image_id) ON DELETE CASCADE,
    model_version text        NOT NULL,
    object_idx    smallint    NOT NULL CHECK (object_idx >= 0),
    label         text        NOT NULL CHECK (label <> ''),
    confidence    real        NOT NULL CHECK (confidence BETWEEN 0 AND 1),
    x1            real        NOT NULL,
    y1            real        NOT NULL,
    x2            real        NOT NULL,
    y2            real        NOT NULL,
    category      text,
    batch_key     text        NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (image_id, model_version, object_idx),
    CHECK (x1 >= 0 AND y1 >= 0 AND x1 < x2 AND y1 < y2)
);
CREATE INDEX IF NOT EXISTS detected_objects_batch_idx ON detected_objects (batch_key, model_version);
CREATE INDEX IF NOT EXISTS detected_objects_category_idx ON detected_objects (lower(category), image_id)
    WHERE category IS NOT NULL;
CREATE INDEX IF NOT EXISTS detected_objects_label_idx ON detected_objects (label);

-- Detector label -> category (the photo plan's: electronics, food, landscape, documents, people,
-- vehicles, animals, ...). Reviewers edit it in the app; edited rows name who and when.
CREATE TABLE IF NOT EXISTS tag_category_map (
    label      text        PRIMARY KEY CHECK (label <> ''),
    category   text        NOT NULL CHECK (category ~ '^[a-z][a-z0-9_ -]{0,39}$'),
    updated_by text        NOT NULL DEFAULT 'seed',
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO tag_category_map (label, category)
SELECT label, category FROM (VALUES
    ('person', 'people'),
    ('bicycle', 'vehicles'), ('car', 'vehicles'), ('motorcycle', 'vehicles'), ('airplane', 'vehicles'),
    ('bus', 'vehicles'), ('train', 'vehicles'), ('truck', 'vehicles'), ('boat', 'vehicles'),
    ('traffic light', 'urban'), ('fire hydrant', 'urban'), ('stop sign', 'urban'), ('parking meter', 'urban'),
    ('bench', 'urban'),
    ('bird', 'animals'), ('cat', 'animals'), ('dog', 'animals'), ('horse', 'animals'), ('sheep', 'animals'),
    ('cow', 'animals'), ('elephant', 'animals'), ('bear', 'animals'), ('zebra', 'animals'), ('giraffe', 'animals'),
    ('backpack', 'fashion'), ('umbrella', 'fashion'), ('handbag', 'fashion'), ('tie', 'fashion'),
    ('suitcase', 'travel'),
    ('frisbee', 'sports'), ('skis', 'sports'), ('snowboard', 'sports'), ('sports ball', 'sports'), ('kite', 'sports'),
    ('baseball bat', 'sports'), ('baseball glove', 'sports'), ('skateboard', 'sports'), ('surfboard', 'sports'),
    ('tennis racket', 'sports'),
    ('bottle', 'food'), ('wine glass', 'food'), ('cup', 'food'), ('fork', 'food'), ('knife', 'food'),
    ('spoon', 'food'), ('bowl', 'food'), ('banana', 'food'), ('apple', 'food'), ('sandwich', 'food'),
    ('orange', 'food'), ('broccoli', 'food'), ('carrot', 'food'), ('hot dog', 'food'), ('pizza', 'food'),
    ('donut', 'food'), ('cake', 'food'),
    ('chair', 'home'), ('couch', 'home'), ('potted plant', 'home'), ('bed', 'home'), ('dining table', 'home'),
    ('toilet', 'home'), ('sink', 'home'), ('clock', 'home'), ('vase', 'home'), ('scissors', 'home'),
    ('teddy bear', 'home'),
    ('tv', 'electronics'), ('laptop', 'electronics'), ('mouse', 'electronics'), ('remote', 'electronics'),
    ('keyboard', 'electronics'), ('cell phone', 'electronics'), ('microwave', 'electronics'),
    ('oven', 'electronics'), ('toaster', 'electronics'), ('refrigerator', 'electronics'),
    ('book', 'documents'),
    ('hair drier', 'beauty'), ('toothbrush', 'beauty')
    -- 'landscape' has no COCO label: scenes are the zero-shot taxonomy's (scene_* tags); a reviewer
    -- can map a label of another detector to it.
) AS seed(label, category)
ON CONFLICT (label) DO NOTHING;

-- ---- erasure -----------------------------------------------------------------------------------
-- A forgotten creator: the platform and the SHA-256 of the normalised username (lowercase, no '@',
-- no surrounding spaces); never the username itself. Sources and sensors drop a tombstoned creator
-- (source_rejects reason 'erased').
CREATE TABLE IF NOT EXISTS creator_tombstones (
    platform        text        NOT NULL,
    username_sha256 char(64)    NOT NULL CHECK (username_sha256 ~ '^[0-9a-f]{64}$'),
    erased_by       text        NOT NULL,
    removed         jsonb       NOT NULL DEFAULT '{}',  -- rows per table, blobs and files removed
    erased_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (platform, username_sha256)
);

-- ---- the creator role and admins -----------------------------------------------------------------
-- 'admin': a reviewer who may also erase creators. 'creator': an account linked to one creator
-- that sees only that creator's images and tags and can dispute a tag. The link goes with the
-- creator (an erasure removes the account too).
ALTER TABLE app_users DROP CONSTRAINT IF EXISTS app_users_role_check;
ALTER TABLE app_users ADD CONSTRAINT app_users_role_check
    CHECK (role IN ('viewer', 'reviewer', 'admin', 'creator'));
ALTER TABLE app_users ADD COLUMN IF NOT EXISTS creator_id bigint REFERENCES creators (creator_id) ON DELETE CASCADE;
ALTER TABLE app_users DROP CONSTRAINT IF EXISTS app_users_creator_link;
ALTER TABLE app_users ADD CONSTRAINT app_users_creator_link CHECK ((role = 'creator') = (creator_id IS NOT NULL));

-- A creator's dispute of a tag on one of their images: it opens (or reopens) a review item with
-- reason 'creator_dispute'; the tag itself changes only when a reviewer decides.
ALTER TABLE tag_review_queue DROP CONSTRAINT IF EXISTS tag_review_queue_reason_check;
ALTER TABLE tag_review_queue ADD CONSTRAINT tag_review_queue_reason_check
    CHECK (reason IN ('low_confidence', 'exclusive_conflict', 'creator_dispute'));
CREATE TABLE IF NOT EXISTS tag_disputes (
    dispute_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    image_id    bigint      NOT NULL REFERENCES images (image_id) ON DELETE CASCADE,
    tag_id      integer     NOT NULL REFERENCES tags (tag_id),
    creator_id  bigint      NOT NULL REFERENCES creators (creator_id) ON DELETE CASCADE,
    disputed_by text        NOT NULL,
    note        text        CHECK (length(note) <= 1000),
    review_id   bigint      REFERENCES tag_review_queue (review_id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS tag_disputes_creator_idx ON tag_disputes (creator_id, created_at DESC);
