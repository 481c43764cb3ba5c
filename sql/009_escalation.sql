-- 009: VLM escalation of queued tags, the review queue's ordering, and per-creator tag history.
--
-- Escalation (assets/tagging/escalation.py): for a pending review item, one constrained question per
-- (image, category) goes to an OpenAI-compatible vision endpoint. The answer is cached by the image's
-- content (sha256), the prompt version, the model and the question (category + its allowed answers):
-- a re-run, or the same picture in another post, asks nothing again. The per-item outcome says what
-- happened to each queue item in the latest run (answered, cached, malformed, error, skipped_budget,
-- skipped_reviewed); the answer itself is an image_tags row with source 'vlm' (review.record_model_answer),
-- which effective_image_tags never reads: a VLM never overrides a reviewer, nor even the model.

CREATE TABLE IF NOT EXISTS vlm_answers (
    answer_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sha256         char(64)    NOT NULL,
    prompt_version text        NOT NULL,
    model          text        NOT NULL,
    category       text        NOT NULL,
    choices_hash   text        NOT NULL,  -- the allowed answers asked for (a taxonomy edit asks again)
    status         text        NOT NULL CHECK (status IN ('ok', 'malformed', 'error')),
    answer         jsonb,                 -- the parsed, schema-valid answer (status 'ok')
    raw_answer     text,                  -- what the model said, verbatim (truncated to 4000 chars)
    error          text,                  -- why it is not 'ok'
    latency_ms     real,
    requests       integer     NOT NULL DEFAULT 1,  -- HTTP requests it took, retries included
    endpoint       text        NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
-- The cache: one 'ok' answer per question; failed attempts (malformed, error) are kept beside it, each its own row.
CREATE UNIQUE INDEX IF NOT EXISTS vlm_answers_cache_idx
    ON vlm_answers (sha256, prompt_version, model, category, choices_hash) WHERE status = 'ok';

CREATE TABLE IF NOT EXISTS escalation_outcomes (
    review_id      bigint      PRIMARY KEY REFERENCES tag_review_queue (review_id) ON DELETE CASCADE,
    status         text        NOT NULL CHECK (status IN ('answered', 'cached', 'malformed', 'error',
                                                          'skipped_budget', 'skipped_reviewed')),
    answer_id      bigint      REFERENCES vlm_answers (answer_id) ON DELETE SET NULL,
    model          text        NOT NULL,
    prompt_version text        NOT NULL,
    present        boolean,               -- the VLM's suggestion for this item's tag (answered/cached)
    detail         text,
    batch_key      text        NOT NULL,
    run_id         text        NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS escalation_outcomes_batch_idx ON escalation_outcomes (batch_key, status);

-- Why a queue item is where it is (assets/tagging/queue_order.py): expected value of a label now.
CREATE TABLE IF NOT EXISTS review_priorities (
    review_id   bigint      PRIMARY KEY REFERENCES tag_review_queue (review_id) ON DELETE CASCADE,
    rank        integer     NOT NULL,
    score       real        NOT NULL,
    cluster     integer,
    reason      text        NOT NULL,
    computed_at timestamptz NOT NULL DEFAULT now()
);

-- Tag history: per creator and tag, the share of analysed images and mean confidence per analysis
-- (model version + calendar month), written by the tagging promotion. A later analysis of the same
-- month and version replaces its row (the month's latest word); a new month or version adds one.
-- A tag that an earlier analysis had and this one lacks is written with share 0.
CREATE TABLE IF NOT EXISTS creator_tag_history (
    creator_id      bigint      NOT NULL REFERENCES creators (creator_id) ON DELETE CASCADE,
    tag_id          integer     NOT NULL REFERENCES tags (tag_id),
    model_version   text        NOT NULL,
    month           date        NOT NULL,  -- first day of the month of the analysis
    share           real        NOT NULL CHECK (share BETWEEN 0 AND 1),
    mean_confidence real        CHECK (mean_confidence BETWEEN 0 AND 1),
    images_analysed integer     NOT NULL CHECK (images_analysed >= 0),
    batch_key       text        NOT NULL,
    run_id          text        NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (creator_id, tag_id, model_version, month)
);
CREATE INDEX IF NOT EXISTS creator_tag_history_time_idx ON creator_tag_history (creator_id, recorded_at);

-- A change of a creator's tag share between two consecutive analyses beyond the threshold
-- (CREATORLENS_TAG_HISTORY_CHANGE): listed for a reviewer on the creator page and the API.
CREATE TABLE IF NOT EXISTS tag_history_changes (
    change_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    creator_id       bigint      NOT NULL REFERENCES creators (creator_id) ON DELETE CASCADE,
    tag_id           integer     NOT NULL REFERENCES tags (tag_id),
    from_version     text        NOT NULL,
    from_month       date        NOT NULL,
    to_version       text        NOT NULL,
    to_month         date        NOT NULL,
    share_before     real        NOT NULL,
    share_after      real        NOT NULL,
    status           text        NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'acknowledged')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (creator_id, tag_id, from_version, from_month, to_version, to_month)
);
CREATE INDEX IF NOT EXISTS tag_history_changes_open_idx ON tag_history_changes (creator_id) WHERE status = 'open';
