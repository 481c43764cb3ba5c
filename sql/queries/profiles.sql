-- Creator profiles: promotion of one batch's enrichment, LLM profiles and text embeddings (one
-- transaction opened by creatorlens.profile_store.promote_profiles), and the lookups around them.
-- Runs after warehouse/promoted_batch, so every creator row exists; it only touches the
-- enrichment columns of `creators` and the two profile tables.

-- name: lock_batch
SELECT pg_advisory_xact_lock(hashtextextended(%(batch_key)s, 0));

-- name: create_stage
CREATE TEMP TABLE stage_enrichment (
    platform text, username text, bio text, category text, full_name text, followers bigint,
    is_business boolean, is_verified boolean, enrich_status text, enriched_fields text[], enriched_at timestamptz
) ON COMMIT DROP;
CREATE TEMP TABLE stage_profiles (
    platform text, username text, status text, error text, profile jsonb, persona text, topics text[],
    model text, prompt_version text, input_hash text
) ON COMMIT DROP;
CREATE TEMP TABLE stage_embeddings (
    platform text, username text, model text, text_source text, text_hash text, embedding vector(384)
) ON COMMIT DROP;

-- name: upsert_enrichment
-- Fill only what is still empty in the warehouse; never overwrite a value a source gave.
UPDATE creators c SET
    bio             = coalesce(c.bio, s.bio),
    category        = coalesce(c.category, s.category),
    full_name       = coalesce(c.full_name, s.full_name),
    followers       = coalesce(c.followers, s.followers),
    is_business     = coalesce(c.is_business, s.is_business),
    is_verified     = coalesce(c.is_verified, s.is_verified),
    enrich_status   = s.enrich_status,
    enriched_fields = coalesce(s.enriched_fields, '{}'),
    enriched_at     = s.enriched_at,
    updated_at      = now()
FROM stage_enrichment s
WHERE c.platform = s.platform AND c.username = s.username AND s.enrich_status IS NOT NULL
  AND (c.bio, c.category, c.full_name, c.followers, c.is_business, c.is_verified,
       c.enrich_status, c.enriched_fields, c.enriched_at)
      IS DISTINCT FROM
      (coalesce(c.bio, s.bio), coalesce(c.category, s.category), coalesce(c.full_name, s.full_name),
       coalesce(c.followers, s.followers), coalesce(c.is_business, s.is_business),
       coalesce(c.is_verified, s.is_verified), s.enrich_status, coalesce(s.enriched_fields, '{}'), s.enriched_at);

-- name: upsert_profiles
-- A failed attempt keeps the last good profile (and its input hash, so it is retried next run).
INSERT INTO creator_profiles AS p (platform, username, status, error, profile, persona, topics, model,
                                   prompt_version, input_hash, batch_key)
SELECT platform, username, status, error, profile, persona, coalesce(topics, '{}'), model, prompt_version,
       input_hash, %(batch_key)s
FROM stage_profiles
ON CONFLICT (platform, username) DO UPDATE SET
    status         = CASE WHEN EXCLUDED.profile IS NOT NULL OR p.profile IS NULL THEN EXCLUDED.status ELSE p.status END,
    error          = EXCLUDED.error,
    profile        = coalesce(EXCLUDED.profile, p.profile),
    persona        = coalesce(EXCLUDED.persona, p.persona),
    topics         = CASE WHEN EXCLUDED.profile IS NOT NULL THEN EXCLUDED.topics ELSE p.topics END,
    model          = CASE WHEN EXCLUDED.profile IS NOT NULL OR p.profile IS NULL THEN EXCLUDED.model ELSE p.model END,
    prompt_version = CASE WHEN EXCLUDED.profile IS NOT NULL OR p.profile IS NULL THEN EXCLUDED.prompt_version
                          ELSE p.prompt_version END,
    input_hash     = CASE WHEN EXCLUDED.profile IS NOT NULL THEN EXCLUDED.input_hash ELSE p.input_hash END,
    batch_key      = EXCLUDED.batch_key,
    updated_at     = now()
WHERE (p.status, p.error, p.profile, p.input_hash, p.model, p.batch_key)
      IS DISTINCT FROM
      (CASE WHEN EXCLUDED.profile IS NOT NULL OR p.profile IS NULL THEN EXCLUDED.status ELSE p.status END,
       EXCLUDED.error, coalesce(EXCLUDED.profile, p.profile),
       CASE WHEN EXCLUDED.profile IS NOT NULL THEN EXCLUDED.input_hash ELSE p.input_hash END,
       CASE WHEN EXCLUDED.profile IS NOT NULL OR p.profile IS NULL THEN EXCLUDED.model ELSE p.model END,
       EXCLUDED.batch_key);

-- name: upsert_embeddings
INSERT INTO profile_embeddings AS e (platform, username, model, text_source, text_hash, embedding, batch_key)
SELECT platform, username, model, text_source, text_hash, embedding, %(batch_key)s FROM stage_embeddings
ON CONFLICT (platform, username) DO UPDATE SET
    model = EXCLUDED.model, text_source = EXCLUDED.text_source, text_hash = EXCLUDED.text_hash,
    embedding = EXCLUDED.embedding, batch_key = EXCLUDED.batch_key, updated_at = now()
WHERE (e.model, e.text_hash, e.batch_key) IS DISTINCT FROM (EXCLUDED.model, EXCLUDED.text_hash, EXCLUDED.batch_key);

-- name: profile_state
-- What the warehouse already holds for these creators: the LLM profile's input hash and persona,
-- and the embedded text's hash (to skip unchanged work).
SELECT c.username, p.status, p.input_hash, p.model, p.persona, e.model AS embed_model, e.text_hash
FROM creators c
LEFT JOIN creator_profiles p ON p.platform = c.platform AND p.username = c.username
LEFT JOIN profile_embeddings e ON e.platform = c.platform AND e.username = c.username
WHERE c.platform = %(platform)s AND c.username = ANY(%(usernames)s);

-- name: similar_creators
-- Nearest creators by cosine distance; the query vector is a scalar sub-select (evaluated once),
-- so the ORDER BY can walk the HNSW index.
SELECT e.username, 1 - (e.embedding <=> (SELECT q.embedding FROM profile_embeddings q
                                           WHERE q.platform = %(platform)s AND q.username = %(username)s))
           AS similarity, e.text_source
FROM profile_embeddings e
WHERE e.platform = %(platform)s AND e.username <> %(username)s
ORDER BY e.embedding <=> (SELECT q.embedding FROM profile_embeddings q
                          WHERE q.platform = %(platform)s AND q.username = %(username)s)
LIMIT %(k)s;

-- name: similar_to_vector
SELECT username, 1 - (embedding <=> %(embedding)s::vector) AS similarity, text_source
FROM profile_embeddings
WHERE platform = %(platform)s
ORDER BY embedding <=> %(embedding)s::vector
LIMIT %(k)s;
