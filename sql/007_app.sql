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
