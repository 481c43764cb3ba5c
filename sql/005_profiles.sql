-- 005: creator profiles — profile API enrichment, LLM-written profiles, text embeddings.
-- Raw API snapshots stay outside the warehouse (profile cache, MongoDB, JSON folder).

-- What the profile API added to a creator: the outcome, which empty fields it filled, when.
ALTER TABLE creators
    ADD COLUMN IF NOT EXISTS enrich_status   text,
    ADD COLUMN IF NOT EXISTS enriched_fields text[] NOT NULL DEFAULT '{}',
    ADD COLUMN IF NOT EXISTS enriched_at     timestamptz;

-- One LLM-written profile per creator. `profile` is the validated JSON; persona and topics are
-- copied out of it for queries. A failed attempt keeps the last good profile and records its error.
CREATE TABLE IF NOT EXISTS creator_profiles (
    platform       text        NOT NULL,
    username       text        NOT NULL,
    status         text        NOT NULL CHECK (status IN ('ok', 'failed')),
    error          text,
    profile        jsonb,
    persona        text,
    topics         text[]      NOT NULL DEFAULT '{}',
    model          text        NOT NULL,
    prompt_version text        NOT NULL,
    input_hash     text,       -- of the prompt that produced `profile` (model included): unchanged = not asked again
    batch_key      text        NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (platform, username),
    FOREIGN KEY (platform, username) REFERENCES creators (platform, username) ON DELETE CASCADE,
    CONSTRAINT creator_profiles_ok_has_profile CHECK (status <> 'ok' OR (profile IS NOT NULL AND persona IS NOT NULL)),
    CONSTRAINT creator_profiles_failed_has_error CHECK (status <> 'failed' OR error IS NOT NULL)
);
CREATE INDEX IF NOT EXISTS creator_profiles_topics_idx ON creator_profiles USING gin (topics);
CREATE INDEX IF NOT EXISTS creator_profiles_batch_key_idx ON creator_profiles (batch_key);

-- Text embedding of persona + bio (or of whichever exists), cosine distance through HNSW.
CREATE TABLE IF NOT EXISTS profile_embeddings (
    platform    text        NOT NULL,
    username    text        NOT NULL,
    model       text        NOT NULL,
    text_source text        NOT NULL CHECK (text_source IN ('persona+bio', 'persona', 'bio')),
    text_hash   text        NOT NULL,
    embedding   vector(384) NOT NULL,
    batch_key   text        NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (platform, username),
    FOREIGN KEY (platform, username) REFERENCES creators (platform, username) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS profile_embeddings_hnsw_idx ON profile_embeddings USING hnsw (embedding vector_cosine_ops);
CREATE INDEX IF NOT EXISTS profile_embeddings_batch_key_idx ON profile_embeddings (batch_key);
