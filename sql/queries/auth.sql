-- Users, sessions and API tokens of the app (app.auth). Only hashes of secrets are stored:
-- token_hash is the SHA-256 of the token handed out once, password_hash an scrypt hash.

-- name: upsert_user
INSERT INTO app_users (username, role, password_hash) VALUES (%(username)s, %(role)s, %(password_hash)s)
ON CONFLICT (username) DO UPDATE SET role = EXCLUDED.role, password_hash = EXCLUDED.password_hash
RETURNING user_id;

-- name: issue_token
-- ttl: an interval ('604800 seconds'), NULL for a token that does not expire.
INSERT INTO app_sessions (token_hash, user_id, kind, label, expires_at)
VALUES (%(token_hash)s, %(user_id)s, %(kind)s, %(label)s, now() + %(ttl)s::interval);

-- name: user_credentials
SELECT user_id, password_hash FROM app_users WHERE username = %(username)s;

-- name: authenticate
-- A live token of this kind: marks it used and returns its user.
UPDATE app_sessions s SET last_used_at = now() FROM app_users u
WHERE s.token_hash = %(token_hash)s AND s.kind = %(kind)s AND u.user_id = s.user_id
  AND (s.expires_at IS NULL OR s.expires_at > now())
RETURNING u.user_id, u.username, u.role;

-- name: revoke_token
DELETE FROM app_sessions WHERE token_hash = %(token_hash)s;

-- name: lock_users
-- Serialises concurrent first starts (ensure_first_user) until the transaction ends.
SELECT pg_advisory_xact_lock(hashtext('creatorlens.app_users'));

-- name: any_user
SELECT EXISTS (SELECT 1 FROM app_users);
