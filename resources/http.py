"""HTTP retry building blocks shared by the profile API, the paged fetcher, the LLM client and image fetching.

Retries run on ``tenacity``; this module only adds what HTTP needs on top of it: a
``Retry-After`` parser, an exception that carries it, and a wait strategy that honours it
(falling back to exponential backoff when the server gave no hint).
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Self

import httpx
import tenacity

# Network failures worth another attempt: timeouts, refused/reset/dropped connections.
NETWORK_ERRORS: tuple[type[BaseException], ...] = (httpx.TimeoutException, httpx.TransportError)
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


class RetryableHttpError(Exception):
    """A response worth retrying (429, 5xx, a "please wait"); ``retry_after`` is the server's hint."""

    def __init__(self, status: int, message: str, retry_after: float | None = None, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        self.body = body


def parse_retry_after(raw: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` value (delta-seconds or an HTTP date); ``None`` when absent/invalid."""
    if raw is None:
        return None
    raw = raw.strip()
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000" parses naive; HTTP dates are always UTC
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


def retry_after_seconds(response: httpx.Response, *, now: datetime | None = None) -> float | None:
    """Seconds from a response's ``Retry-After`` header; ``None`` when absent/invalid."""
    return parse_retry_after(response.headers.get("retry-after"), now=now)


def raise_for_retryable(response: httpx.Response) -> None:
    """Raise :class:`RetryableHttpError` for 429 and 5xx answers; return otherwise."""
    if response.status_code in RETRYABLE_STATUS:
        raise RetryableHttpError(
            response.status_code,
            f"HTTP {response.status_code}",
            retry_after=retry_after_seconds(response),
            body=response.text[:2000],
        )


class wait_retry_after(tenacity.wait.wait_base):  # noqa: N801 - tenacity's naming style
    """Wait what the server asked for (capped), else fall back to ``fallback`` (exponential backoff)."""

    def __init__(self, fallback: tenacity.wait.wait_base, max_wait: float = 3600.0) -> None:
        self.fallback = fallback
        self.max_wait = max_wait

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        hint = getattr(exc, "retry_after", None)
        if hint is not None:
            return min(float(hint), self.max_wait)
        return min(self.fallback(retry_state), self.max_wait)


def http_retrying(
    *,
    attempts: int,
    backoff_s: float,
    sleep: Callable[[float], None] = time.sleep,
    max_wait: float = 3600.0,
) -> tenacity.Retrying:
    """A ``Retrying`` for network errors and 429/5xx: ``attempts`` in all, waits ``backoff_s`` × 1, 2, 4 …

    ``Retry-After`` wins over the computed backoff. The last exception is re-raised.
    """
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception_type((*NETWORK_ERRORS, RetryableHttpError)),
        stop=tenacity.stop_after_attempt(attempts),
        wait=wait_retry_after(tenacity.wait_exponential(multiplier=backoff_s, exp_base=2), max_wait=max_wait),
        sleep=sleep,
        reraise=True,
    )


class HttpClientOwner:
    """Holds an ``httpx.Client``: a given one is borrowed, a created one is closed with ``close()``."""

    def _init_http(self, http: httpx.Client | None, **client_kwargs: object) -> None:
        self._own_http = http is None
        self._http = http or httpx.Client(**client_kwargs)  # type: ignore[arg-type]

    def close(self) -> None:
        if self._own_http:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
