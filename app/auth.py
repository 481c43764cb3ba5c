"""Users, sessions, API tokens and CSRF.

- Passwords: scrypt (n=2**14, r=8, p=1) with a random salt.
- Sessions (browser) and API tokens (``Authorization: Bearer``): 32 random bytes handed to the
  client once; only their SHA-256 is stored, so a leaked table opens nothing.
- CSRF: cookie-authenticated writes must carry a token derived from the session secret
  (HMAC-SHA256), in the form field ``csrf_token`` or the ``X-CSRF-Token`` header. Bearer-token
  requests carry no ambient credential and need none.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Connection

from creatorlens.queries import load_queries

SESSION_COOKIE = "creatorlens_session"
# Login CSRF (before there is a session): GET /login sets this random pre-session cookie and puts
# login_csrf_for(cookie) in the form; POST /login refuses a form whose token does not match the
# cookie it came with. A cross-site page can neither read the cookie nor compute the token.
LOGIN_COOKIE = "creatorlens_login"
SESSION_TTL = timedelta(days=7)
# admin: a reviewer who may also erase creators; creator: an account linked to one creator
# (create_creator_user) that sees only that creator's images and tags (app.creator_control).
ROLES = ("viewer", "reviewer", "admin", "creator")
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
QUERIES = "auth.sql"


def _execute(conn: Connection, name: str, **params):
    """auth.sql's statement ``name`` with ``params`` (psycopg placeholders)."""
    return conn.exec_driver_sql(load_queries(QUERIES)[name], params)


@dataclass(frozen=True)
class User:
    user_id: int
    username: str
    role: str
    via: str  # "session" | "api"
    secret: str  # the presented token (needed to derive the CSRF token)

    @property
    def is_reviewer(self) -> bool:
        return self.role in ("reviewer", "admin")

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def is_creator(self) -> bool:
        return self.role == "creator"

    @property
    def csrf_token(self) -> str:
        return csrf_for(self.secret)


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    candidate = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), dklen=32, n=int(n), r=int(r), p=int(p))
    return hmac.compare_digest(candidate.hex(), digest)


def _token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def csrf_for(secret: str) -> str:
    return hmac.new(secret.encode(), b"creatorlens-csrf", hashlib.sha256).hexdigest()


def csrf_ok(user: User, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(user.csrf_token, presented or "")


def new_login_nonce() -> str:
    return secrets.token_urlsafe(32)


def login_csrf_for(nonce: str) -> str:
    return hmac.new(nonce.encode(), b"creatorlens-login-csrf", hashlib.sha256).hexdigest()


def login_csrf_ok(nonce: str | None, presented: str | None) -> bool:
    return bool(nonce) and bool(presented) and hmac.compare_digest(login_csrf_for(nonce or ""), presented or "")


# Refused outright whatever their length: the most common passwords and keyboard walks.
COMMON_PASSWORDS = frozenset("""
12345678 123456789 1234567890 0123456789 87654321 11111111 00000000 password password1 password12
password123 passw0rd p@ssword p@ssw0rd qwertyui qwertyuiop qwerty123 qwerty1234 asdfghjk asdfghjkl
zxcvbnm1 1q2w3e4r 1q2w3e4r5t iloveyou sunshine princess football baseball welcome1 welcome123
admin123 administrator letmein1 trustno1 superman abc12345 abcd1234 abcdefgh monkey12 dragon12
changeme changeme1 creatorlens creatorlens1 secret12 default1
""".split())
MIN_PASSWORD = 8


def check_password(password: str, username: str | None = None) -> str:
    """``password`` if it passes the policy, else ValueError saying why (never echoing it)."""
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"password must have at least {MIN_PASSWORD} characters")
    if not password.strip():
        raise ValueError("password must not be only spaces")
    folded = password.strip().lower()
    if folded in COMMON_PASSWORDS or (username and folded == username.lower()):
        raise ValueError("password is too common (or is the username): choose another")
    if len(set(password)) < 4:
        raise ValueError("password must use at least 4 different characters")
    return password


def create_user(conn: Connection, username: str, password: str, role: str | None = None) -> int:
    """Create ``username``, or reset an existing one's password (and role, when ``role`` is given:
    None keeps it; a new user is a viewer). A reset ends every session and API token of the user."""
    if role is not None and role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}")
    if role == "creator":
        raise ValueError("a creator account is linked to its creator: use create_creator_user")
    check_password(password, username)
    row = _execute(conn, "upsert_user", username=username, role=role, password_hash=hash_password(password)).one()
    if row.existed:
        _execute(conn, "revoke_user_sessions", user_id=row.user_id)
    return row.user_id


def create_creator_user(conn: Connection, username: str, password: str, creator: str, platform: str = "instagram") -> int:
    """Create (or reset) ``username`` as the ``creator`` account of ``platform:creator``; ValueError if
    the warehouse has no such creator. A reset ends every session and API token of the user."""
    check_password(password, username)
    row = conn.exec_driver_sql(load_queries("creator_role.sql")["upsert_creator_user"], {
        "username": username, "password_hash": hash_password(password), "platform": platform,
        "creator": creator}).first()
    if row is None:
        raise ValueError(f"no creator {platform}:{creator} in the warehouse")
    if row.existed:
        _execute(conn, "revoke_user_sessions", user_id=row.user_id)
    return row.user_id


def _issue(conn: Connection, user_id: int, kind: str, label: str | None, ttl: timedelta | None) -> str:
    token = secrets.token_urlsafe(32)
    _execute(conn, "issue_token", token_hash=_token_hash(token), user_id=user_id, kind=kind, label=label,
             ttl=f"{int(ttl.total_seconds())} seconds" if ttl else None)
    return token


# A stored-looking hash to verify unknown users against (made once, at import): one scrypt run per
# login attempt whether or not the user exists.
_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


def login(conn: Connection, username: str, password: str) -> str | None:
    """A new session token for valid credentials, else None (same answer, and the same single scrypt
    run, for unknown users: no enumeration by timing)."""
    row = _execute(conn, "user_credentials", username=username).first()
    if row is None:
        verify_password(password, _DUMMY_HASH)
        return None
    if not verify_password(password, row.password_hash):
        return None
    return _issue(conn, row.user_id, "session", None, SESSION_TTL)


API_TOKEN_TTL = timedelta(days=90)
MAX_API_TOKEN_TTL = timedelta(days=3650)


def issue_api_token(conn: Connection, username: str, label: str = "cli", ttl: timedelta = API_TOKEN_TTL) -> str:
    """A new API token for ``username`` that expires after ``ttl`` (every API token expires)."""
    if not timedelta(0) < ttl <= MAX_API_TOKEN_TTL:
        raise ValueError(f"a token lives more than 0 and at most {MAX_API_TOKEN_TTL.days} days")
    user_id = _execute(conn, "user_credentials", username=username).one().user_id
    return _issue(conn, user_id, "api", label, ttl)


def list_api_tokens(conn: Connection, username: str | None = None) -> list[dict]:
    """API tokens (id, user, label, created, expires, last used, expired): never a secret or its hash."""
    return [dict(r) for r in _execute(conn, "list_api_tokens", username=username).mappings()]


def revoke_api_token(conn: Connection, token_id: int, username: str | None = None) -> bool:
    """Revoke API token ``token_id`` (only if it is ``username``'s, when given); False if there was none."""
    return _execute(conn, "revoke_api_token", token_id=token_id, username=username).first() is not None


def authenticate(conn: Connection, token: str | None, kind: str) -> User | None:
    """The user behind a live token of ``kind``, else None. A plain read (no row lock); the token's
    ``last_used_at`` is recorded by :func:`touch`, outside the request's transaction."""
    if not token:
        return None
    row = _execute(conn, "authenticate", token_hash=_token_hash(token), kind=kind).first()
    return User(row.user_id, row.username, row.role, kind, token) if row else None


def authenticate_and_touch(conn: Connection, token: str | None, kind: str) -> User | None:
    """:func:`authenticate` and :func:`touch` in one statement: what each request runs (on an
    autocommit connection, so it costs one round trip and holds no lock past itself)."""
    if not token:
        return None
    row = _execute(conn, "authenticate_and_touch", token_hash=_token_hash(token), kind=kind).first()
    return User(row.user_id, row.username, row.role, kind, token) if row else None


def touch(conn: Connection, token: str) -> None:
    """Record that ``token`` was used: at most once a minute, skipping a row another request holds."""
    _execute(conn, "touch_token", token_hash=_token_hash(token))


def logout(conn: Connection, token: str) -> None:
    _execute(conn, "revoke_token", token_hash=_token_hash(token))


def ensure_first_user(conn: Connection, username: str = "admin") -> str | None:
    """If the app has no users at all, create reviewer ``username`` with a random password and return
    it (to be shown once); otherwise None. Concurrent starts create at most one."""
    _execute(conn, "lock_users")
    if _execute(conn, "any_user").scalar_one():
        return None
    password = secrets.token_urlsafe(12)
    create_user(conn, username, password, "reviewer")
    return password
