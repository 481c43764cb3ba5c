-- 015: photos a reviewer uploads for a creator in the app (issue 16, "upload → tags").
-- The bytes sit in the blob store (blob_key, content-addressed); the row follows them through the
-- pipeline: pending (stored) → processing (upload_sensor asked for a run; run_key names it, run_id
-- once Dagster made it) → completed (image ok and tagged) / partial (image ok, no tags) / failed.
-- image_key is the images row the upload becomes ("<platform>:upload-<sha256[:16]>").
-- One row per creator and content: the same bytes uploaded again for the same creator are this row.
CREATE TABLE IF NOT EXISTS uploads (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    platform    text        NOT NULL,
    username    text        NOT NULL,
    sha256      char(64)    NOT NULL,
    blob_key    text        NOT NULL,
    uploaded_by text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    status      text        NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'processing', 'completed', 'partial', 'failed')),
    reason      text,
    run_key     text,
    run_id      text,
    image_key   text        NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (platform, username, sha256),
    CONSTRAINT uploads_failed_has_reason CHECK (status NOT IN ('failed', 'partial') OR reason IS NOT NULL)
);
-- The sensors' work lists: only the unfinished uploads (few) are indexed.
CREATE INDEX IF NOT EXISTS uploads_open_idx ON uploads (status) WHERE status IN ('pending', 'processing');
