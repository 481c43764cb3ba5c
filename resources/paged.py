"""Paged fetcher for posts/reels APIs (TikHub-like): cursor or ``max_id`` pagination.

Raw pages go to local files first, exactly as received, with a ``manifest.jsonl`` line per
page (ok or not), and only then into a store: the JSON folder source
(:func:`load_into_json_folder`) or MongoDB (:func:`load_into_mongo`, error bodies included
with their status). A crash between the two steps loses nothing: the loaders read the files.

Pagination stops when the answer says there is no more, when it has no next cursor, when a
cursor comes back that was already used (some APIs loop on their last page), after
``max_pages``, or on an error that survived the retries (429/5xx and network errors are
retried with exponential backoff, honouring ``Retry-After``). The error's body is kept, under
``errors/`` with a reason read from it (a JSON ``{"code", "message"}`` / ``{"detail"}`` body, an
HTML page's title); so is a 2xx answer that is not JSON or whose envelope says it failed
(``{"code": 4xx, "message": ...}`` with no ``data``). Each run's stop reason is appended to
``runs.jsonl`` (:func:`record_run`), so a repeated cursor or an error is recorded, not only logged.

File names follow the dump convention the sources parse: ``<endpoint>(<username>)_<NNNN>.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import httpx

from creatorlens.fields import dig
from resources.http import (
    NETWORK_ERRORS,
    HttpClientOwner,
    RetryableHttpError,
    http_retrying,
    raise_for_retryable,
)

MANIFEST = "manifest.jsonl"
RUNS = "runs.jsonl"
ERROR_DIR = "errors"
_OK_CODES = (0, 200, "0", "200", "ok", "OK")
CURSOR_PATHS = ("data.next_max_id", "data.next_cursor", "data.max_id", "data.cursor", "next_max_id",
                "next_cursor", "max_id", "cursor", "pagination_token", "data.pagination_token")
MORE_PATHS = ("data.more_available", "data.has_more", "more_available", "has_more")


@dataclass(frozen=True)
class PagedEndpoint:
    """One paged API: ``url`` with ``{username}``, the cursor's query parameter and where to find it."""

    name: str
    url: str
    cursor_param: str = "max_id"
    params: Mapping[str, str] = field(default_factory=dict)
    cursor_paths: tuple[str, ...] = CURSOR_PATHS
    more_paths: tuple[str, ...] = MORE_PATHS
    max_pages: int = 100


@dataclass
class PageRecord:
    """One manifest line: a page saved as ``filename`` (under ``errors/`` when ``status`` is not 2xx)."""

    filename: str
    username: str
    page: int
    status: int | None
    url: str
    cursor: str | None
    fetched_at: str
    error: str | None = None

    @property
    def ok(self) -> bool:
        """A 2xx JSON page the sources can read (not an error body, not HTML served as 200)."""
        return self.status is not None and 200 <= self.status < 300 and self.error is None


@dataclass
class PagedRun:
    username: str
    pages: list[PageRecord] = field(default_factory=list)
    stop_reason: str = ""
    requests: int = 0
    endpoint: str = ""

    @property
    def error(self) -> str | None:
        """Why the last page failed (``None`` when it did not)."""
        return self.pages[-1].error if self.pages and not self.pages[-1].ok else None


# Called after each page is saved: the page's record and its parsed JSON (``None`` for an error page).
PageCallback = Callable[[PageRecord, Any], None]


class ResponseStore(Protocol):
    def put(self, filename: str, body: str, *, status: int = 200, url: str | None = None,
            fetched_at: datetime | None = None) -> None: ...


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _first(doc: Any, paths: Iterable[str]) -> Any:
    return next((v for v in (dig(doc, p) for p in paths) if v not in (None, "")), None)


def _html_title(text: str) -> str | None:
    start = text.lower().find("<title>")
    end = text.lower().find("</title>", start)
    return " ".join(text[start + 7:end].split())[:200] or None if start >= 0 and end > start else None


def error_reason(status: int | None, body: bytes | str) -> str:
    """A one-line reason for an error answer: the status plus what its body says, e.g.
    ``HTTP 403: code 403: Invalid token`` (JSON ``code``/``message``/``detail``) or
    ``HTTP 500: HTML page 'Oops'``."""
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    head = f"HTTP {status}" if status is not None else "no answer"
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        inner = doc.get("detail") if isinstance(doc.get("detail"), dict) else doc
        code = inner.get("code")
        message = next((inner[k] for k in ("message", "message_en", "error", "detail", "msg")
                        if isinstance(inner.get(k), str) and inner[k].strip()), None)
        parts = [f"code {code}" if code is not None else None, " ".join(message.split())[:300] if message else None]
        said = ": ".join(p for p in parts if p)
        return f"{head}: {said}" if said else head
    if "<html" in text[:500].lower() or "<!doctype html" in text[:500].lower():
        title = _html_title(text[:5000])
        return f"{head}: HTML page" + (f" {title!r}" if title else "")
    snippet = " ".join(text[:200].split())
    return f"{head}: {snippet}" if snippet else head


def envelope_error(doc: Any) -> str | None:
    """Why a 2xx JSON answer is nevertheless a failure: an envelope ``{"code": 4xx, "message": ...}``
    (TikHub-like APIs) without ``data``; ``None`` for a page to keep."""
    if not isinstance(doc, dict) or "code" not in doc or doc.get("data") not in (None, {}, []):
        return None
    if doc.get("code") in _OK_CODES or any(k in doc for k in ("items", "user", "graphql")):
        return None
    return "API error: " + error_reason(None, json.dumps(doc)).removeprefix("no answer: ")


class PagedFetcher(HttpClientOwner):
    """Fetch every page of one endpoint for a username into ``out_dir``."""

    def __init__(self, out_dir: Path | str, *, http: httpx.Client | None = None,
                 headers: Mapping[str, str] | None = None, retries: int = 5, backoff_s: float = 1.0,
                 timeout_s: float = 30.0, sleep: Callable[[float], None] = time.sleep) -> None:
        self.out_dir = Path(out_dir)
        self.headers = dict(headers or {})
        self.retries = retries
        self.backoff_s = backoff_s
        self._sleep = sleep
        self._init_http(http, timeout=timeout_s, follow_redirects=True)

    def _get(self, url: str, params: Mapping[str, str], run: PagedRun) -> httpx.Response:
        def once() -> httpx.Response:
            run.requests += 1
            # Merge explicitly: httpx's ``params=`` replaces a query string already in the URL.
            response = self._http.get(httpx.URL(url).copy_merge_params(dict(params)), headers=self.headers)
            raise_for_retryable(response)
            return response

        return http_retrying(attempts=self.retries + 1, backoff_s=self.backoff_s, sleep=self._sleep)(once)

    def _record(self, run: PagedRun, endpoint: PagedEndpoint, page: int, url: str, cursor: str | None,
                status: int | None, body: bytes, error: str | None = None) -> PageRecord:
        filename = f"{endpoint.name}({run.username})_{page:04d}.json"
        record = PageRecord(filename, run.username, page, status, url, cursor,
                            datetime.now(UTC).isoformat(), error)
        if record.ok:
            _write_atomic(self.out_dir / filename, body)
        else:
            _write_atomic(self.out_dir / ERROR_DIR / filename, body)
        with (self.out_dir / MANIFEST).open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(asdict(record)) + "\n")
        run.pages.append(record)
        return record

    def fetch(self, endpoint: PagedEndpoint, username: str, on_page: PageCallback | None = None) -> PagedRun:
        """Every page of ``endpoint`` for ``username``; ``on_page`` sees each page once it is saved
        (e.g. to download the page's images while their signed URLs are still valid)."""
        run = PagedRun(username, endpoint=endpoint.name)
        run.stop_reason = self._pages(endpoint, run, on_page or (lambda record, doc: None))
        return run

    def _pages(self, endpoint: PagedEndpoint, run: PagedRun, on_page: PageCallback) -> str:
        """Fetch and save the pages of one run; returns the stop reason."""
        url = endpoint.url.format(username=quote(run.username, safe=""))
        seen: set[str] = set()
        cursor: str | None = None
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for page in range(1, endpoint.max_pages + 1):
            params = {**endpoint.params, **({endpoint.cursor_param: cursor} if cursor else {})}

            def failed(status: int | None, body: bytes, error: str, reason: str,
                       page: int = page, cursor: str | None = cursor) -> str:
                on_page(self._record(run, endpoint, page, url, cursor, status, body, error), None)
                return reason

            try:
                response = self._get(url, params, run)
            except RetryableHttpError as exc:  # still 429/5xx after the retries
                return failed(exc.status, exc.body.encode(), error_reason(exc.status, exc.body), f"http_{exc.status}")
            except NETWORK_ERRORS as exc:
                error = f"{type(exc).__name__}: {exc}"
                return failed(None, error.encode(), error, "network_error")
            if not 200 <= response.status_code < 300:
                return failed(response.status_code, response.content,
                              error_reason(response.status_code, response.content), f"http_{response.status_code}")
            try:
                doc = response.json()
            except ValueError:
                return failed(response.status_code, response.content,
                              "not JSON: " + error_reason(response.status_code, response.content), "invalid_json")
            if (problem := envelope_error(doc)) is not None:
                return failed(response.status_code, response.content, problem, "api_error")
            on_page(self._record(run, endpoint, page, url, cursor, response.status_code, response.content), doc)
            if cursor is not None:
                seen.add(cursor)
            more = _first(doc, endpoint.more_paths)
            next_cursor = _first(doc, endpoint.cursor_paths)
            if more is False or next_cursor is None:
                return "end"
            cursor = str(next_cursor)
            if cursor in seen:
                return "repeated_cursor"
        return "max_pages"


def read_manifest(out_dir: Path | str) -> list[PageRecord]:
    """Manifest lines, the latest per file name (a refetched page replaces its older line)."""
    path = Path(out_dir) / MANIFEST
    latest: dict[str, PageRecord] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = PageRecord(**json.loads(line))
                latest[record.filename] = record
    return list(latest.values())


def _page_path(out_dir: Path, record: PageRecord) -> Path:
    return out_dir / record.filename if record.ok else out_dir / ERROR_DIR / record.filename


def load_into_json_folder(out_dir: Path | str, json_dir: Path | str) -> int:
    """Copy the successful pages into the JSON folder source; returns pages copied."""
    out, target = Path(out_dir), Path(json_dir)
    target.mkdir(parents=True, exist_ok=True)
    copied = 0
    for record in read_manifest(out):
        if record.ok:
            tmp = target / f".{record.filename}.tmp-{os.getpid()}"
            shutil.copyfile(_page_path(out, record), tmp)
            os.replace(tmp, target / record.filename)
            copied += 1
    return copied


def record_run(out_dir: Path | str, run: PagedRun, **extra: Any) -> None:
    """Append one run's outcome (user, endpoint, pages, requests, stop reason, error) to ``runs.jsonl``."""
    line = {"username": run.username, "endpoint": run.endpoint, "pages": len(run.pages),
            "ok_pages": sum(p.ok for p in run.pages), "requests": run.requests, "stop_reason": run.stop_reason,
            "error": run.error, "finished_at": datetime.now(UTC).isoformat(), **extra}
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    with (Path(out_dir) / RUNS).open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(line) + "\n")


def read_runs(out_dir: Path | str) -> list[dict[str, Any]]:
    """Every line of ``runs.jsonl``, oldest first."""
    path = Path(out_dir) / RUNS
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def load_into_mongo(out_dir: Path | str, store: ResponseStore, records: Iterable[PageRecord] | None = None) -> int:
    """Upsert every page (or only ``records``), error bodies included with their status, into a
    raw-response store."""
    out = Path(out_dir)
    loaded = 0
    for record in read_manifest(out) if records is None else records:
        body = _page_path(out, record).read_text(encoding="utf-8", errors="replace")
        store.put(record.filename, body, status=record.status or 0, url=record.url,
                  fetched_at=datetime.fromisoformat(record.fetched_at))
        loaded += 1
    return loaded
