-- 004: image embeddings (pgvector halfvec + HNSW), tags, zero-shot image/creator tags, review queue,
-- reviewer feedback, calibrated thresholds, analysis history.
--
-- Model versions: every embedding and every AI tag carries model_version ("model_id@revision").
-- A new model version adds rows beside the old ones; every query names one version.
--
-- Vector index design: pgvector's HNSW needs a fixed dimension per index, and different models
-- have different dimensions (SigLIP SO400M 1152, OpenCLIP ViT-L/14 768, tiny test models 24–32).
-- image_embeddings.embedding is an unconstrained halfvec; each model version gets its own PARTIAL
-- expression index  USING hnsw ((embedding::halfvec(<dim>)) halfvec_cosine_ops) WHERE model_version = '<v>',
-- created by the tagging promotion when a version first appears (creatorlens.tag_promotion) with
-- the configured m / ef_construction, and recorded in embedding_models. Queries order by the same
-- expression and filter on the same model_version, so the planner picks that version's index.
-- The cast in the index expression also enforces the dimension: inserting a vector of another
-- length for that version fails.

-- Each taxonomy that produced tags: its content hash and content, so every tag names its taxonomy.
CREATE TABLE IF NOT EXISTS tag_taxonomies (
    taxonomy_version text        PRIMARY KEY,
    name             text        NOT NULL,
    source           text,
    content          jsonb       NOT NULL,
    first_seen_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS tags (
    tag_id           integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name             text        NOT NULL UNIQUE,
    category         text        NOT NULL,
    exclusive        boolean     NOT NULL,
    description      text,
    taxonomy_version text        NOT NULL REFERENCES tag_taxonomies (taxonomy_version),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- One row per embedding model version seen: its dimension and the HNSW index that serves it.
CREATE TABLE IF NOT EXISTS embedding_models (
    model_version        text        PRIMARY KEY,
    model_id             text        NOT NULL,
    backend              text        NOT NULL,
    dim                  integer     NOT NULL CHECK (dim BETWEEN 1 AND 4000),  -- halfvec HNSW limit
    scoring              text        NOT NULL CHECK (scoring IN ('sigmoid', 'softmax')),
    index_name           text        NOT NULL UNIQUE,
    hnsw_m               integer     NOT NULL,
    hnsw_ef_construction integer     NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS image_embeddings (
    model_version text        NOT NULL REFERENCES embedding_models (model_version),
    image_id      bigint      NOT NULL REFERENCES images (image_id) ON DELETE CASCADE,
    embedding     halfvec     NOT NULL,
    batch_key     text        NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model_version, image_id)
);
CREATE INDEX IF NOT EXISTS image_embeddings_image_idx ON image_embeddings (image_id);

-- Tags on images. source: 'ai' (zero-shot, one row per model version), 'user' (a reviewer's
-- decision, model_version '' : it holds whatever model is current; present=false means the
-- reviewer said the tag does NOT apply), 'vlm' (an escalation answer, model_version = the VLM;
-- kept beside the others, never overriding a person).
CREATE TABLE IF NOT EXISTS image_tags (
    image_id         bigint      NOT NULL REFERENCES images (image_id) ON DELETE CASCADE,
    tag_id           integer     NOT NULL REFERENCES tags (tag_id),
    source           text        NOT NULL CHECK (source IN ('ai', 'user', 'vlm')),
    model_version    text        NOT NULL DEFAULT '',
    present          boolean     NOT NULL DEFAULT true,
    confidence       real        CHECK (confidence BETWEEN 0 AND 1),
    threshold        real        CHECK (threshold > 0 AND threshold <= 1),
    threshold_source text        CHECK (threshold_source IN ('taxonomy', 'calibrated')),
    taxonomy_version text        REFERENCES tag_taxonomies (taxonomy_version),
    batch_key        text,
    review_id        bigint,
    reviewer         text,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (image_id, tag_id, source, model_version),
    CONSTRAINT image_tags_ai_lineage CHECK (
        source <> 'ai' OR (present AND confidence IS NOT NULL AND threshold IS NOT NULL
                           AND confidence >= threshold AND model_version <> '' AND taxonomy_version IS NOT NULL)),
    CONSTRAINT image_tags_user_unversioned CHECK (source <> 'user' OR model_version = '')
);
CREATE INDEX IF NOT EXISTS image_tags_tag_idx ON image_tags (tag_id, model_version) WHERE present;
CREATE INDEX IF NOT EXISTS image_tags_batch_idx ON image_tags (batch_key, model_version) WHERE source = 'ai';

-- Per creator: share of analysed images carrying each tag and their mean confidence.
CREATE TABLE IF NOT EXISTS creator_tags (
    creator_id       bigint      NOT NULL REFERENCES creators (creator_id) ON DELETE CASCADE,
    tag_id           integer     NOT NULL REFERENCES tags (tag_id),
    source           text        NOT NULL DEFAULT 'ai' CHECK (source IN ('ai', 'user')),
    model_version    text        NOT NULL,
    share            real        NOT NULL CHECK (share > 0 AND share <= 1),
    mean_confidence  real        NOT NULL CHECK (mean_confidence BETWEEN 0 AND 1),
    images_tagged    integer     NOT NULL CHECK (images_tagged > 0),
    images_analysed  integer     NOT NULL CHECK (images_analysed >= images_tagged),
    taxonomy_version text        NOT NULL REFERENCES tag_taxonomies (taxonomy_version),
    batch_key        text        NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (creator_id, tag_id, source, model_version)
);
CREATE INDEX IF NOT EXISTS creator_tags_tag_idx ON creator_tags (tag_id, model_version, share DESC);

-- Tags waiting for a person: confidence between the review floor and the threshold, or two
-- tags of an exclusive category both over their thresholds.
CREATE TABLE IF NOT EXISTS tag_review_queue (
    review_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    image_id         bigint      NOT NULL REFERENCES images (image_id) ON DELETE CASCADE,
    tag_id           integer     NOT NULL REFERENCES tags (tag_id),
    model_version    text        NOT NULL,
    reason           text        NOT NULL CHECK (reason IN ('low_confidence', 'exclusive_conflict')),
    confidence       real        NOT NULL CHECK (confidence BETWEEN 0 AND 1),
    threshold        real        NOT NULL CHECK (threshold > 0 AND threshold <= 1),
    review_floor     real        NOT NULL CHECK (review_floor >= 0),
    taxonomy_version text        NOT NULL REFERENCES tag_taxonomies (taxonomy_version),
    batch_key        text        NOT NULL,
    status           text        NOT NULL DEFAULT 'pending'
                                 CHECK (status IN ('pending', 'accepted', 'rejected', 'corrected', 'superseded')),
    escalated_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    resolved_at      timestamptz,
    resolved_by      text,
    UNIQUE (image_id, tag_id, model_version)
);
CREATE INDEX IF NOT EXISTS tag_review_queue_pending_idx ON tag_review_queue (model_version, created_at)
    WHERE status = 'pending';

-- Every reviewer decision, as a label for calibration: label=true means the tag applies.
CREATE TABLE IF NOT EXISTS tag_feedback (
    feedback_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    image_id      bigint      NOT NULL REFERENCES images (image_id) ON DELETE CASCADE,
    tag_id        integer     NOT NULL REFERENCES tags (tag_id),
    label         boolean     NOT NULL,
    action        text        NOT NULL CHECK (action IN ('accepted', 'rejected', 'added', 'removed')),
    review_id     bigint      REFERENCES tag_review_queue (review_id) ON DELETE SET NULL,
    model_version text,
    confidence    real        CHECK (confidence BETWEEN 0 AND 1),
    reviewer      text        NOT NULL,
    note          text,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS tag_feedback_pair_idx ON tag_feedback (image_id, tag_id, created_at DESC);

-- Calibrated per-tag thresholds, per model version (scores of different models are not comparable).
CREATE TABLE IF NOT EXISTS tag_thresholds (
    model_version    text        NOT NULL,
    tag_id           integer     NOT NULL REFERENCES tags (tag_id),
    threshold        real        NOT NULL CHECK (threshold > 0 AND threshold <= 1),
    method           text        NOT NULL CHECK (method IN ('max_f1', 'precision_floor')),
    precision        real        NOT NULL,
    recall           real        NOT NULL,
    f1               real        NOT NULL,
    positives        integer     NOT NULL,
    negatives        integer     NOT NULL,
    taxonomy_version text        NOT NULL,
    computed_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model_version, tag_id)
);

-- Audit: one row per creator each time an analysis changes its tags (a rerun with the same result adds none).
CREATE TABLE IF NOT EXISTS tag_analysis_history (
    analysis_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    creator_id       bigint      NOT NULL REFERENCES creators (creator_id) ON DELETE CASCADE,
    model_version    text        NOT NULL,
    taxonomy_version text        NOT NULL,
    images_analysed  integer     NOT NULL,
    tags             jsonb       NOT NULL,  -- {"tag": {"share": s, "confidence": c}, ...}
    batch_key        text        NOT NULL,
    run_id           text        NOT NULL,
    analysed_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS tag_analysis_history_creator_idx
    ON tag_analysis_history (creator_id, model_version, analysed_at DESC);

-- One row per successful tagging promotion of a batch and model version.
CREATE TABLE IF NOT EXISTS tag_promotions (
    batch_key        text        NOT NULL,
    model_version    text        NOT NULL,
    run_id           text        NOT NULL,
    taxonomy_version text        NOT NULL,
    counts           jsonb       NOT NULL,
    promoted_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (batch_key, model_version, run_id)
);
