-- Review and search app: users, sessions and API tokens. Secrets are stored only as SHA-256
-- hashes (tokens are 32 random bytes, so a plain hash is enough); passwords as scrypt hashes.
CREATE TABLE IF NOT EXISTS app_users (
    user_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      text        NOT NULL UNIQUE CHECK (username ~ '^[a-z0-9_.-]{2,40}$'),
    role          text        NOT NULL CHECK (role IN ('viewer', 'reviewer')),
    password_hash text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS app_sessions (
    token_hash  bytea       PRIMARY KEY,
    user_id     bigint      NOT NULL REFERENCES app_users (user_id) ON DELETE CASCADE,
    kind        text        NOT NULL CHECK (kind IN ('session', 'api')),
    label       text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,
    last_used_at timestamptz
);
CREATE INDEX IF NOT EXISTS app_sessions_user ON app_sessions (user_id);

-- Keyword search over captions and creator bios (OCR text, tags and LLM profiles carry their own
-- tsvector columns in their migrations). 'simple': creator text is multilingual, so no stemming.
ALTER TABLE posts ADD COLUMN IF NOT EXISTS caption_tsv tsvector
    GENERATED ALWAYS AS (to_tsvector('simple', coalesce(caption, ''))) STORED;
CREATE INDEX IF NOT EXISTS posts_caption_tsv ON posts USING gin (caption_tsv);
ALTER TABLE creators ADD COLUMN IF NOT EXISTS profile_tsv tsvector
    GENERATED ALWAYS AS (to_tsvector('simple',
        coalesce(username, '') || ' ' || coalesce(full_name, '') || ' ' || coalesce(category, '') || ' ' || coalesce(bio, ''))) STORED;
CREATE INDEX IF NOT EXISTS creators_profile_tsv ON creators USING gin (profile_tsv);

-- Keyword search over LLM-written profiles (persona and topics). array_to_string is only STABLE
-- (it could format any element type); for text[] it is immutable, which a generated column needs.
CREATE OR REPLACE FUNCTION creatorlens_words(text[]) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN array_to_string($1, ' ');
ALTER TABLE creator_profiles ADD COLUMN IF NOT EXISTS profile_tsv tsvector
    GENERATED ALWAYS AS (to_tsvector('simple', coalesce(persona, '') || ' ' || creatorlens_words(topics))) STORED;
CREATE INDEX IF NOT EXISTS creator_profiles_profile_tsv ON creator_profiles USING gin (profile_tsv);

-- Tags a reviewer adds that the taxonomy does not list (origin 'user', category 'custom', no
-- taxonomy version). Taxonomy promotion takes a name over if the taxonomy later lists it.
-- Prefix search for autocomplete: a text_pattern_ops btree answers prefix LIKE queries (autocomplete).
ALTER TABLE tags ADD COLUMN IF NOT EXISTS origin text NOT NULL DEFAULT 'taxonomy'
    CHECK (origin IN ('taxonomy', 'user'));
ALTER TABLE tags ALTER COLUMN taxonomy_version DROP NOT NULL;
ALTER TABLE tags DROP CONSTRAINT IF EXISTS tags_taxonomy_lineage;
ALTER TABLE tags ADD CONSTRAINT tags_taxonomy_lineage CHECK (origin = 'user' OR taxonomy_version IS NOT NULL);
CREATE INDEX IF NOT EXISTS tags_name_prefix ON tags (name text_pattern_ops);

-- "Look at this image again": a reviewer's request for re-analysis. One open flag per image.
-- flagged_images_sensor runs the image's batch again; the vision promotion of a run that began
-- after the flag resolves it (the monthly schedule or a manual run does too).
CREATE TABLE IF NOT EXISTS image_flags (
    flag_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    image_id    bigint      NOT NULL REFERENCES images (image_id) ON DELETE CASCADE,
    reason      text        NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
    flagged_by  text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz,
    resolved_run_id text
);
CREATE UNIQUE INDEX IF NOT EXISTS image_flags_open ON image_flags (image_id) WHERE resolved_at IS NULL;
