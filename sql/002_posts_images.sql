-- 002: posts, their images (one row per post image, failures included), duplicates, promotions.
CREATE TABLE IF NOT EXISTS posts (
    platform    text        NOT NULL,
    post_id     text        NOT NULL,
    username    text        NOT NULL,
    shortcode   text,
    taken_at    timestamptz,
    caption     text,
    likes       bigint      NOT NULL DEFAULT 0,
    comments    bigint      NOT NULL DEFAULT 0,
    media_url   text,
    is_video    boolean     NOT NULL DEFAULT false,
    batch_key   text        NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (platform, post_id)
);
CREATE INDEX IF NOT EXISTS posts_username_idx ON posts (platform, username);
CREATE INDEX IF NOT EXISTS posts_batch_key_idx ON posts (batch_key);

-- image_key is the natural key "<platform>:<post_id>"; sha256 identifies the content and is
-- indexed, not unique: the same bytes posted twice is exactly the exact-duplicate case we report.
CREATE TABLE IF NOT EXISTS images (
    image_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    image_key     text        NOT NULL UNIQUE,
    platform      text        NOT NULL,
    post_id       text        NOT NULL,
    username      text        NOT NULL,
    batch_key     text        NOT NULL,
    rank          smallint    NOT NULL,
    engagement    bigint      NOT NULL,
    source_uri    text,
    status        text        NOT NULL CHECK (status IN ('ok', 'failed')),
    error_reason  text,
    error         text,
    sha256        char(64),
    blob_key      text,
    thumb_key     text,
    byte_size     bigint,
    width         integer,
    height        integer,
    source_format text,
    source_mode   text,
    frames        integer,
    exif_rotated  boolean,
    pdq_hash      char(64),
    pdq_quality   smallint,
    processed_at  timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT images_ok_has_hashes CHECK (
        status <> 'ok' OR (sha256 IS NOT NULL AND pdq_hash IS NOT NULL AND pdq_quality IS NOT NULL)
    ),
    CONSTRAINT images_failed_has_reason CHECK (status <> 'failed' OR error_reason IS NOT NULL)
);
-- sha256 is only ever looked up by equality: a hash index is smaller and cheaper to maintain.
CREATE INDEX IF NOT EXISTS images_sha256_idx ON images USING hash (sha256);
CREATE INDEX IF NOT EXISTS images_batch_key_idx ON images (batch_key);
CREATE INDEX IF NOT EXISTS images_username_idx ON images (platform, username);
-- Failures are the rows people look up by reason; ok rows need no status index.
CREATE INDEX IF NOT EXISTS images_failed_idx ON images (error_reason) WHERE status = 'failed';

-- Each unordered pair once (image_key_a < image_key_b), found by the batch named in batch_key.
CREATE TABLE IF NOT EXISTS image_duplicates (
    image_key_a text     NOT NULL,
    image_key_b text     NOT NULL,
    distance    smallint NOT NULL CHECK (distance BETWEEN 0 AND 256),
    kind        text     NOT NULL CHECK (kind IN ('exact', 'near')),
    batch_key   text     NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (image_key_a, image_key_b),
    CHECK (image_key_a < image_key_b)
);
CREATE INDEX IF NOT EXISTS image_duplicates_b_idx ON image_duplicates (image_key_b);
CREATE INDEX IF NOT EXISTS image_duplicates_batch_key_idx ON image_duplicates (batch_key);

-- One row per successful promotion of a batch: which run, which code, what it wrote.
CREATE TABLE IF NOT EXISTS promotions (
    promotion_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    batch_key    text        NOT NULL,
    run_id       text        NOT NULL,
    code_version text        NOT NULL,
    counts       jsonb       NOT NULL,
    promoted_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (batch_key, run_id)
);
