-- Users, sessions and API tokens of the app (app.auth). Only hashes of secrets are stored:
-- token_hash is the SHA-256 of the token handed out once, password_hash an scrypt hash.

-- name: upsert_user
-- role NULL: a new user is a viewer, an existing one keeps its role. existed: this was a reset.
INSERT INTO app_users (username, role, password_hash)
VALUES (%(username)s, coalesce(%(role)s, 'viewer'), %(password_hash)s)
ON CONFLICT (username) DO UPDATE SET role = coalesce(%(role)s, app_users.role),
                                     password_hash = EXCLUDED.password_hash
RETURNING user_id, role, (xmax <> 0) AS existed;

-- name: revoke_user_sessions
-- A password reset or role change: every session and API token of the user ends.
DELETE FROM app_sessions WHERE user_id = %(user_id)s;

-- name: issue_token
-- ttl: an interval ('604800 seconds'), NULL for a token that does not expire.
INSERT INTO app_sessions (token_hash, user_id, kind, label, expires_at)
VALUES (%(token_hash)s, %(user_id)s, %(kind)s, %(label)s, now() + %(ttl)s::interval);

-- name: user_credentials
SELECT user_id, password_hash FROM app_users WHERE username = %(username)s;

-- name: authenticate
-- A live token of this kind and its user. A plain read: no row lock, so any number of concurrent
-- requests presenting one token never wait on each other (touch_token records the use).
SELECT u.user_id, u.username, u.role
FROM app_sessions s JOIN app_users u ON u.user_id = s.user_id
WHERE s.token_hash = %(token_hash)s AND s.kind = %(kind)s
  AND (s.expires_at IS NULL OR s.expires_at > now());

-- name: touch_token
-- Marks a token used, at most once a minute, and never waits: a row another request is touching
-- right now is skipped (SKIP LOCKED). Runs in its own short transaction, not the request's.
UPDATE app_sessions SET last_used_at = now()
WHERE token_hash IN (
    SELECT token_hash FROM app_sessions
    WHERE token_hash = %(token_hash)s AND (last_used_at IS NULL OR last_used_at < now() - interval '60 seconds')
    FOR UPDATE SKIP LOCKED);

-- name: revoke_token
DELETE FROM app_sessions WHERE token_hash = %(token_hash)s;

-- name: lock_users
-- Serialises concurrent first starts (ensure_first_user) until the transaction ends.
SELECT pg_advisory_xact_lock(hashtext('creatorlens.app_users'));

-- name: any_user
SELECT EXISTS (SELECT 1 FROM app_users);

-- name: list_api_tokens
-- API tokens (never their hashes), of one user or of all (username NULL), newest first.
SELECT s.token_id, u.username, u.role, s.label, s.created_at, s.expires_at, s.last_used_at,
       (s.expires_at IS NOT NULL AND s.expires_at <= now()) AS expired
FROM app_sessions s JOIN app_users u ON u.user_id = s.user_id
WHERE s.kind = 'api' AND (%(username)s::text IS NULL OR u.username = %(username)s)
ORDER BY s.created_at DESC, s.token_id DESC;

-- name: revoke_api_token
-- One API token by its id (optionally only if it is this user's); returns the id when it existed.
DELETE FROM app_sessions s USING app_users u
WHERE u.user_id = s.user_id AND s.kind = 'api' AND s.token_id = %(token_id)s
  AND (%(username)s::text IS NULL OR u.username = %(username)s)
RETURNING s.token_id, u.username, s.label;

-- name: authenticate_and_touch
-- authenticate and touch_token in one statement (one round trip, run in autocommit: the touch's row
-- lock lasts only this statement, and SKIP LOCKED means it never waits on another request's).
WITH hit AS (
    SELECT s.token_hash, u.user_id, u.username, u.role
    FROM app_sessions s JOIN app_users u ON u.user_id = s.user_id
    WHERE s.token_hash = %(token_hash)s AND s.kind = %(kind)s
      AND (s.expires_at IS NULL OR s.expires_at > now())
), touched AS (
    UPDATE app_sessions SET last_used_at = now()
    WHERE token_hash IN (
        SELECT a.token_hash FROM app_sessions a JOIN hit ON hit.token_hash = a.token_hash
        WHERE a.last_used_at IS NULL OR a.last_used_at < now() - interval '60 seconds'
        FOR UPDATE OF a SKIP LOCKED)
)
SELECT user_id, username, role FROM hit;
