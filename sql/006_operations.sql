-- 006: operations. Failed runs per batch (written by the run-failure sensor) and creators that
-- arrive in the warehouse without a batch.

-- One row per failed Dagster run of a batch. Re-delivery of the same failure (a sensor tick
-- retried after a crash) updates the row instead of adding one.
CREATE TABLE IF NOT EXISTS batch_failures (
    run_id       text        PRIMARY KEY,
    batch_key    text,                    -- NULL for a failed run that was not partitioned
    job_name     text        NOT NULL,
    failed_steps text[]      NOT NULL DEFAULT '{}',
    error_class  text,
    error        text        NOT NULL,
    failed_at    timestamptz NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS batch_failures_batch_key_idx ON batch_failures (batch_key, failed_at DESC);

-- A creator inserted straight into the warehouse (a manual import, another system) has no
-- batch yet: the new-creator sensor assigns one in creator_batches and stamps it here.
ALTER TABLE creators ALTER COLUMN batch_key DROP NOT NULL;
-- Keeps the stamping UPDATE (run on every discovery) an index lookup, not a table scan.
CREATE INDEX IF NOT EXISTS creators_unbatched_idx ON creators (platform, username) WHERE batch_key IS NULL;
