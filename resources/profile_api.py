"""Profile API client (httpx): polite, resilient, cached and resumable.

* **Politeness**: a token bucket of ``rate_per_minute`` (capacity 1) decides when the next
  request may start; each request then waits a random jitter (2–4 s by default) past its slot.
  Slots are anchored, so jitter varies the gaps without lowering the average rate (as long as
  the jitter is shorter than the slot). After every ``batch_size`` profiles fetched over the
  network the client pauses ``batch_pause_s``.
* **Resilience** (retries on ``tenacity``): HTTP 429 waits ``Retry-After`` (or backs off
  exponentially); a 401 whose body says "Please wait" is a rate limit too, and
  ``please_wait_streak`` of them in a row trigger a long pause; timeouts, dropped connections
  and 5xx retry ``network_retries`` times with exponential backoff. An HTML page instead of
  JSON (or a 404, or ``data.user == null``) means the profile does not exist: ``not_found``.
* **Cache and resume**: every outcome, errors included, is written to a SQLite file with its
  ``fetched_at`` as soon as it is known, so a killed run resumes where it stopped. Final
  outcomes (ok, not found, other 4xx, unreadable answers) are never fetched again; transient
  ones (rate limited, network, auth) are retried by the next run. ``force`` clears the cache.

No credentials live in the code: the URL template and headers come from the environment
(``CREATORLENS_PROFILE_URL_TEMPLATE``, ``CREATORLENS_PROFILE_HEADERS`` as a JSON object).
"""

from __future__ import annotations

import json
import random
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import quote

import dagster as dg
import httpx
import tenacity
from pydantic import Field

from creatorlens.fields import BIO_LIMIT, PLATFORM, clean_bio, dig, parse_count
from creatorlens.settings import Settings, env_secret
from resources.http import NETWORK_ERRORS, HttpClientOwner, RetryableHttpError, retry_after_seconds

# ---- what an answer of the profile API means (Instagram web_profile_info by default)

# Where each creator field sits in the answer (dotted path). Default: Instagram web_profile_info.
DEFAULT_USER_PATH = "data.user"


DEFAULT_MAPPING: dict[str, str] = {
    "category": "data.user.category_name",
    "bio": "data.user.biography",
    "full_name": "data.user.full_name",
    "followers": "data.user.edge_followed_by.count",
    "is_business": "data.user.is_business_account",
    "is_verified": "data.user.is_verified",
}


class FetchStatus(StrEnum):
    OK = "ok"
    NOT_FOUND = "not_found"  # HTML page, 404, or an answer without a user object
    RATE_LIMITED = "rate_limited"  # 429 / "please wait" still after every retry
    NETWORK_ERROR = "network_error"  # timeouts, dropped connections, 5xx after every retry
    AUTH_ERROR = "auth_error"  # 401/403 that is not a rate limit: fix the headers, then rerun
    HTTP_ERROR = "http_error"  # any other 4xx
    INVALID = "invalid_response"  # 200 but not JSON we can read


# Outcomes that are final: cached and never asked again (unless forced). The others are
# cached too (with their error), but a later run retries them.
TERMINAL_STATUSES = frozenset({FetchStatus.OK, FetchStatus.NOT_FOUND, FetchStatus.HTTP_ERROR, FetchStatus.INVALID})


def _text(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    return " ".join(value.split()) or None


def _flag(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _count(value: Any) -> int | None:
    try:
        return parse_count(value)
    except ValueError:
        return None


_CLEANERS = {
    "category": _text,
    "bio": lambda v: clean_bio(v, BIO_LIMIT) if isinstance(v, str) else None,
    "full_name": _text,
    "followers": _count,
    "is_business": _flag,
    "is_verified": _flag,
}


def has_user(doc: Any, user_path: str = DEFAULT_USER_PATH) -> bool:
    """True when the answer holds a user object (Instagram answers ``{"data": {"user": null}}`` otherwise)."""
    return isinstance(dig(doc, user_path), dict) if user_path else isinstance(doc, dict)


def map_profile(doc: Any, mapping: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Creator fields from one API answer, cleaned: bio on one line and ≤ 500 chars, counts as ints."""
    result: dict[str, Any] = {}
    for name, path in (mapping or DEFAULT_MAPPING).items():
        clean = _CLEANERS.get(name, lambda v: v)
        result[name] = clean(dig(doc, path))
    return result



PLEASE_WAIT = "please wait"


@dataclass(frozen=True)
class ProfileResult:
    """One profile's outcome: mapped fields when ``ok``, else a status and an error."""

    username: str
    status: FetchStatus
    profile: dict[str, Any] | None = None
    http_status: int | None = None
    error: str | None = None
    fetched_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    attempts: int = 0
    from_cache: bool = False

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class PleaseWait(RetryableHttpError):
    """A 401 whose body says "Please wait": Instagram's way of rate limiting a session."""


class RateLimiter:
    """Token bucket (capacity 1) at ``per_minute`` with a random jitter past each slot.

    Thread-safe. ``defer`` holds the next request back (``Retry-After``, backoff, batch pauses);
    the schedule restarts from there, so a pause never lets later requests catch up in a burst.
    """

    def __init__(self, per_minute: float, jitter_s: tuple[float, float] = (2.0, 4.0), *,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None) -> None:
        if per_minute <= 0:
            raise ValueError("per_minute must be > 0")
        low, high = jitter_s
        if low < 0 or high < low:
            raise ValueError(f"invalid jitter range {jitter_s}")
        self.interval = 60.0 / per_minute
        self.jitter_s = (low, high)
        self._clock, self._sleep, self._rng = clock, sleep, rng or random.Random()
        self._next_slot: float | None = None
        self._lock = threading.Lock()

    def wait(self) -> float:
        """Block until the next request may start; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            slot = now if self._next_slot is None else max(self._next_slot, now)
            self._next_slot = slot + self.interval
            start_at = slot + self._rng.uniform(*self.jitter_s)
        delay = max(0.0, start_at - now)
        if delay:
            self._sleep(delay)
        return delay

    def defer(self, seconds: float) -> float:
        """No request before ``seconds`` from now; returns how far that pushed the schedule out."""
        with self._lock:
            now = self._clock()
            planned = now if self._next_slot is None else max(self._next_slot, now)
            self._next_slot = max(planned, now + seconds)
            return self._next_slot - planned


class ProfileCache:
    """Every profile outcome, one SQLite row per (platform, username), committed immediately."""

    def __init__(self, path: Path | str, platform: str = PLATFORM) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.platform = platform
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=60, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            """CREATE TABLE IF NOT EXISTS profiles (
                   platform TEXT NOT NULL, username TEXT NOT NULL, status TEXT NOT NULL,
                   http_status INTEGER, profile TEXT, error TEXT, attempts INTEGER NOT NULL,
                   fetched_at TEXT NOT NULL, PRIMARY KEY (platform, username))"""
        )
        # Politeness state shared by every run on this cache: profiles fetched since the last
        # batch pause, and until when a pause lasts (a restarted run keeps to both).
        self._db.execute(
            """CREATE TABLE IF NOT EXISTS politeness (
                   platform TEXT PRIMARY KEY, in_batch INTEGER NOT NULL, resume_at TEXT)"""
        )

    def get(self, username: str) -> ProfileResult | None:
        with self._lock:
            row = self._db.execute(
                "SELECT status, http_status, profile, error, attempts, fetched_at FROM profiles "
                "WHERE platform = ? AND username = ?", (self.platform, username)).fetchone()
        if row is None:
            return None
        status, http_status, profile, error, attempts, fetched_at = row
        return ProfileResult(username, FetchStatus(status), json.loads(profile) if profile else None, http_status,
                             error, datetime.fromisoformat(fetched_at), attempts, from_cache=True)

    def put(self, result: ProfileResult) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO profiles VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (self.platform, result.username, str(result.status), result.http_status,
                 json.dumps(result.profile) if result.profile is not None else None, result.error,
                 result.attempts, result.fetched_at.isoformat()),
            )

    def politeness(self) -> tuple[int, datetime | None]:
        """(profiles fetched since the last batch pause, end of the current pause or None)."""
        with self._lock:
            row = self._db.execute("SELECT in_batch, resume_at FROM politeness WHERE platform = ?",
                                   (self.platform,)).fetchone()
        if row is None:
            return 0, None
        return row[0], datetime.fromisoformat(row[1]) if row[1] else None

    def set_politeness(self, in_batch: int, resume_at: datetime | None = None) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO politeness VALUES (?, ?, ?)",
                             (self.platform, in_batch, resume_at.isoformat() if resume_at else None))

    def clear(self, usernames: Iterable[str] | None = None) -> int:
        """Forget the given usernames (all when ``None``); returns rows removed."""
        with self._lock:
            if usernames is None:
                return self._db.execute("DELETE FROM profiles WHERE platform = ?", (self.platform,)).rowcount
            return sum(self._db.execute("DELETE FROM profiles WHERE platform = ? AND username = ?",
                                        (self.platform, u)).rowcount for u in dict.fromkeys(usernames))

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._db.execute(
                "SELECT status, count(*) FROM profiles WHERE platform = ? GROUP BY 1", (self.platform,)).fetchall())

    def close(self) -> None:
        with self._lock:
            self._db.close()


@dataclass(frozen=True)
class ProfileClientConfig:
    url_template: str
    headers: Mapping[str, str] = field(default_factory=dict)
    mapping: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_MAPPING))
    user_path: str = DEFAULT_USER_PATH
    rate_per_minute: float = 10.0
    jitter_s: tuple[float, float] = (2.0, 4.0)
    batch_size: int = 100
    batch_pause_s: float = 1800.0
    timeout_s: float = 20.0
    network_retries: int = 3
    backoff_s: float = 2.0
    rate_limit_retries: int = 5
    rate_limit_backoff_s: float = 60.0
    please_wait_streak: int = 5
    please_wait_pause_s: float = 900.0
    max_retry_after_s: float = 3600.0


@dataclass
class ClientStats:
    """What the client did: requests (by user), network fetches, cache hits and deliberate pauses."""

    requests: int = 0
    requests_by_user: Counter = field(default_factory=Counter)
    responses: Counter = field(default_factory=Counter)  # "200", "429", "timeout", ...
    fetched: int = 0
    cached: int = 0
    paused_s: float = 0.0  # how far pauses pushed the schedule beyond the rate limit's own slots
    batch_pauses: int = 0
    long_pauses: int = 0
    first_request_at: float | None = None
    last_request_at: float | None = None

    def request_rate_per_minute(self) -> float | None:
        """Requests per minute of sending time (wall time minus deliberate pauses)."""
        if self.first_request_at is None or self.last_request_at is None or self.requests < 2:
            return None
        active = self.last_request_at - self.first_request_at - self.paused_s
        return (self.requests - 1) / active * 60.0 if active > 0 else None


@dataclass
class _Tries:
    network: int = 0
    rate: int = 0
    total: int = 0


class ProfileClient(HttpClientOwner):
    """Fetch profiles one by one through the rate limiter, the retry policy and the cache."""

    def __init__(self, config: ProfileClientConfig, cache: ProfileCache, *, http: httpx.Client | None = None,
                 sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None) -> None:
        self.config = config
        self.cache = cache
        self.stats = ClientStats()
        self._limiter = RateLimiter(config.rate_per_minute, config.jitter_s, sleep=sleep, rng=rng)
        self._init_http(http, timeout=httpx.Timeout(config.timeout_s), follow_redirects=True)
        self._please_wait_streak = 0

    # ---------------------------------------------------------------- public API
    def fetch(self, username: str, *, force: bool = False) -> ProfileResult:
        """The profile from the cache when final there (and not ``force``), else from the API."""
        if not force:
            cached = self.cache.get(username)
            if cached is not None and cached.terminal:
                self.stats.cached += 1
                return cached
        result = self._fetch_remote(username)
        self.cache.put(result)  # progress is saved after every profile
        self.stats.fetched += 1
        return result

    def fetch_many(self, usernames: Iterable[str], *, force: bool = False, limit: int | None = None,
                   on_batch: Callable[[], None] | None = None) -> Iterator[ProfileResult]:
        """Fetch in order; after every ``batch_size`` network fetches call ``on_batch`` and pause.

        The pause happens before the next network fetch, so a finished run never waits for
        nothing. The count and the pause live in the cache, so they hold across runs (one
        Dagster run per creator batch) and across a restart.
        """
        names = list(dict.fromkeys(usernames))
        if limit is not None:
            names = names[:limit]
        if force:
            self.cache.clear(names)
        in_batch, resume_at = self.cache.politeness()
        if resume_at is not None:
            self._pause((resume_at - datetime.now(UTC)).total_seconds())
        for username in names:
            cached = self.cache.get(username)
            if cached is not None and cached.terminal:
                self.stats.cached += 1
                yield cached
                continue
            if in_batch >= self.config.batch_size:
                self.cache.set_politeness(0, datetime.now(UTC) + timedelta(seconds=self.config.batch_pause_s))
                self._pause(self.config.batch_pause_s)
                self.stats.batch_pauses += 1
                in_batch = 0
            result = self.fetch(username, force=True)
            in_batch += 1
            self.cache.set_politeness(in_batch)
            yield result  # the caller applies it first, so its checkpoint includes this profile
            if in_batch >= self.config.batch_size and on_batch is not None:
                on_batch()

    # ---------------------------------------------------------------- internals
    def _pause(self, seconds: float) -> None:
        """A deliberate pause (Retry-After, backoff, batch pause): the limiter sleeps it before the next request."""
        if seconds > 0:
            self.stats.paused_s += self._limiter.defer(seconds)

    def _url(self, username: str) -> str:
        return self.config.url_template.format(username=quote(username, safe=""))

    def _request(self, username: str, tries: _Tries) -> ProfileResult:
        """One HTTP request; raises what is worth retrying, returns every other outcome."""
        tries.total += 1
        self._limiter.wait()
        now = time.monotonic()
        if self.stats.first_request_at is None:
            self.stats.first_request_at = now
        self.stats.last_request_at = now
        self.stats.requests += 1
        self.stats.requests_by_user[username] += 1
        try:
            response = self._http.get(self._url(username), headers=dict(self.config.headers))
        except NETWORK_ERRORS as exc:
            tries.network += 1
            self.stats.responses["timeout" if isinstance(exc, httpx.TimeoutException) else "network"] += 1
            raise
        status = response.status_code
        self.stats.responses[str(status)] += 1
        body = response.text
        if status == 401 and PLEASE_WAIT in body.lower():
            self._please_wait_streak += 1
            tries.rate += 1
            raise PleaseWait(401, "401 please wait", retry_after_seconds(response), body[:500])
        self._please_wait_streak = 0
        if status == 429:
            tries.rate += 1
            raise RetryableHttpError(429, "HTTP 429", retry_after_seconds(response), body[:500])
        if status >= 500:
            tries.network += 1
            raise RetryableHttpError(status, f"HTTP {status}", retry_after_seconds(response), body[:500])
        return self._classify(username, response, tries.total)

    def _classify(self, username: str, response: httpx.Response, attempts: int) -> ProfileResult:
        status = response.status_code
        result = ProfileResult(username, FetchStatus.OK, http_status=status, attempts=attempts)
        body = response.text
        looks_html = "html" in response.headers.get("content-type", "").lower() or body.lstrip()[:1] == "<"
        if status == 404 or (status == 200 and looks_html):
            return replace(result, status=FetchStatus.NOT_FOUND, error="HTML page instead of JSON" if looks_html
                           else "HTTP 404")
        if status in (401, 403):
            return replace(result, status=FetchStatus.AUTH_ERROR, error=f"HTTP {status}: {body[:200]}")
        if status >= 400:
            return replace(result, status=FetchStatus.HTTP_ERROR, error=f"HTTP {status}: {body[:200]}")
        try:
            doc = response.json()
        except ValueError as exc:
            return replace(result, status=FetchStatus.INVALID, error=f"not JSON: {exc}")
        if not has_user(doc, self.config.user_path):
            return replace(result, status=FetchStatus.NOT_FOUND, error=f"no object at {self.config.user_path!r}")
        return replace(result, profile=map_profile(doc, self.config.mapping))

    def _stop(self, state: tenacity.RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome else None
        tries: _Tries = state.kwargs["tries"]
        if isinstance(exc, RetryableHttpError) and exc.status in (401, 429):
            return tries.rate > self.config.rate_limit_retries
        return tries.network > self.config.network_retries

    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        tries: _Tries = state.kwargs["tries"]
        cfg = self.config
        if isinstance(exc, PleaseWait) and self._please_wait_streak >= cfg.please_wait_streak:
            self._please_wait_streak = 0
            self.stats.long_pauses += 1
            return cfg.please_wait_pause_s
        if isinstance(exc, RetryableHttpError) and exc.retry_after is not None:
            return min(exc.retry_after, cfg.max_retry_after_s)
        if isinstance(exc, RetryableHttpError) and exc.status in (401, 429):
            return min(cfg.rate_limit_backoff_s * 2 ** (tries.rate - 1), cfg.max_retry_after_s)
        return min(cfg.backoff_s * 2 ** (tries.network - 1), cfg.max_retry_after_s)

    def _fetch_remote(self, username: str) -> ProfileResult:
        tries = _Tries()
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type((*NETWORK_ERRORS, RetryableHttpError)),
            stop=self._stop, wait=self._wait, sleep=self._pause, reraise=True,
        )
        try:
            return retrying(self._request, username, tries=tries)
        except RetryableHttpError as exc:
            status = FetchStatus.RATE_LIMITED if exc.status in (401, 429) else FetchStatus.NETWORK_ERROR
            return ProfileResult(username, status, http_status=exc.status, attempts=tries.total,
                                 error=f"{exc} after {tries.total} attempts: {exc.body[:200]}")
        except NETWORK_ERRORS as exc:
            return ProfileResult(username, FetchStatus.NETWORK_ERROR, attempts=tries.total,
                                 error=f"{type(exc).__name__}: {exc} (after {tries.total} attempts)"[:500])


def _json_object(raw: str | None, what: str) -> dict[str, str]:
    if not raw:
        return {}
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a JSON object")
    return {str(k): str(v) for k, v in value.items()}


# Resource fields passed to ProfileClientConfig as they are.
_SAME_NAMED = ("user_path", "rate_per_minute", "batch_size", "batch_pause_s", "timeout_s", "network_retries",
               "backoff_s", "rate_limit_retries", "rate_limit_backoff_s", "please_wait_pause_s")


class ProfileApi(dg.ConfigurableResource):
    """The profile API (Instagram ``web_profile_info`` shape by default). Optional: with no URL
    template the enrichment asset passes profiles through unchanged."""

    url_template: str | None = Field(default=None, description="URL with a {username} placeholder; empty = off.")
    headers_json: str | None = Field(
        default=None, description="Request headers as a JSON object; empty = CREATORLENS_PROFILE_HEADERS, read when "
        "the client opens (kept out of the resource config, so the Dagster UI never shows it).")
    mapping_json: str | None = Field(default=None, description="Field -> dotted path overrides (JSON object).")
    user_path: str = Field(default=DEFAULT_USER_PATH, description="Path of the user object; missing = not found.")
    rate_per_minute: float = Field(default=10.0, gt=0)
    jitter_min_s: float = Field(default=2.0, ge=0)
    jitter_max_s: float = Field(default=4.0, ge=0)
    batch_size: int = Field(default=100, ge=1)
    batch_pause_s: float = Field(default=1800.0, ge=0)
    timeout_s: float = Field(default=20.0, gt=0)
    network_retries: int = Field(default=3, ge=0)
    backoff_s: float = Field(default=2.0, ge=0)
    rate_limit_retries: int = Field(default=5, ge=0)
    rate_limit_backoff_s: float = Field(default=60.0, ge=0)
    please_wait_pause_s: float = Field(default=900.0, ge=0)
    cache_path: str = Field(default=".creatorlens/profile_cache.sqlite")

    @classmethod
    def from_settings(cls, settings: Settings) -> ProfileApi:
        return cls(
            url_template=settings.profile_url_template,
            mapping_json=settings.profile_mapping,
            rate_per_minute=settings.profile_rate_limit,
            jitter_min_s=settings.profile_jitter_min_s,
            jitter_max_s=settings.profile_jitter_max_s,
            batch_size=settings.profile_batch_size,
            batch_pause_s=settings.profile_batch_pause_s,
            timeout_s=settings.profile_timeout_s,
            please_wait_pause_s=settings.profile_please_wait_pause_s,
            cache_path=str(settings.resolved_profile_cache),
        )

    @property
    def configured(self) -> bool:
        return bool(self.url_template)

    def client_config(self) -> ProfileClientConfig:
        if not self.url_template:
            raise ValueError("no profile API URL template configured (CREATORLENS_PROFILE_URL_TEMPLATE)")
        return ProfileClientConfig(
            url_template=self.url_template,
            headers=_json_object(self.headers_json or env_secret("profile_headers"), "profile headers"),
            mapping={**DEFAULT_MAPPING, **_json_object(self.mapping_json, "profile mapping")},
            jitter_s=(self.jitter_min_s, max(self.jitter_min_s, self.jitter_max_s)),
            **{name: getattr(self, name) for name in _SAME_NAMED},
        )

    @contextmanager
    def open_client(self) -> Iterator[ProfileClient]:
        cache = ProfileCache(self.cache_path)
        try:
            with ProfileClient(self.client_config(), cache) as client:
                yield client
        finally:
            cache.close()
