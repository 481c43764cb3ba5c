-- 001: extensions and the creator/batch backbone.
CREATE EXTENSION IF NOT EXISTS vector;

-- A creator belongs to exactly one batch (the primary key enforces it).
CREATE TABLE IF NOT EXISTS creator_batches (
    platform     text        NOT NULL,
    username     text        NOT NULL,
    batch_key    text        NOT NULL,
    assigned_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (platform, username)
);
CREATE INDEX IF NOT EXISTS creator_batches_batch_key_idx ON creator_batches (batch_key);

CREATE TABLE IF NOT EXISTS creators (
    creator_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    platform     text        NOT NULL,
    username     text        NOT NULL,
    full_name    text,
    bio          text,
    category     text,
    country      text,
    followers    bigint CHECK (followers IS NULL OR followers >= 0),
    is_business  boolean,
    is_verified  boolean,
    sources      text[]      NOT NULL DEFAULT '{}',
    batch_key    text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (platform, username)
);
CREATE INDEX IF NOT EXISTS creators_batch_key_idx ON creators (batch_key);

-- Everything a source parser refused, with where and why (never a silent drop).
CREATE TABLE IF NOT EXISTS source_rejects (
    source        text        NOT NULL,
    record        text        NOT NULL,
    reason        text        NOT NULL,
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, record)
);
