"""Paged fetcher for posts/reels APIs (TikHub-like): cursor or ``max_id`` pagination.

Raw pages go to local files first, exactly as received, with a ``manifest.jsonl`` line per
page (ok or not), and only then into a store: the JSON folder source
(:func:`load_into_json_folder`) or MongoDB (:func:`load_into_mongo`, error bodies included
with their status). A crash between the two steps loses nothing: the loaders read the files.

Pagination stops when the answer says there is no more, when it has no next cursor, when a
cursor comes back that was already used (some APIs loop on their last page), after
``max_pages``, or on an error that survived the retries (429/5xx and network errors are
retried with exponential backoff, honouring ``Retry-After``). The error's body is kept.

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
ERROR_DIR = "errors"
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
        return self.status is not None and 200 <= self.status < 300


@dataclass
class PagedRun:
    username: str
    pages: list[PageRecord] = field(default_factory=list)
    stop_reason: str = ""
    requests: int = 0


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

    def fetch(self, endpoint: PagedEndpoint, username: str) -> PagedRun:
        run = PagedRun(username)
        url = endpoint.url.format(username=quote(username, safe=""))
        seen: set[str] = set()
        cursor: str | None = None
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for page in range(1, endpoint.max_pages + 1):
            params = {**endpoint.params, **({endpoint.cursor_param: cursor} if cursor else {})}
            try:
                response = self._get(url, params, run)
            except RetryableHttpError as exc:
                self._record(run, endpoint, page, url, cursor, exc.status, exc.body.encode(), str(exc))
                run.stop_reason = f"http_{exc.status}"
                return run
            except NETWORK_ERRORS as exc:
                error = f"{type(exc).__name__}: {exc}"
                self._record(run, endpoint, page, url, cursor, None, error.encode(), error)
                run.stop_reason = "network_error"
                return run
            if not 200 <= response.status_code < 300:
                self._record(run, endpoint, page, url, cursor, response.status_code, response.content,
                             f"HTTP {response.status_code}")
                run.stop_reason = f"http_{response.status_code}"
                return run
            try:
                doc = response.json()
            except ValueError as exc:
                self._record(run, endpoint, page, url, cursor, response.status_code, response.content,
                             f"not JSON: {exc}")
                run.stop_reason = "invalid_json"
                return run
            self._record(run, endpoint, page, url, cursor, response.status_code, response.content)
            if cursor is not None:
                seen.add(cursor)
            more = _first(doc, endpoint.more_paths)
            next_cursor = _first(doc, endpoint.cursor_paths)
            if more is False or next_cursor is None:
                run.stop_reason = "end"
                return run
            cursor = str(next_cursor)
            if cursor in seen:
                run.stop_reason = "repeated_cursor"
                return run
        run.stop_reason = "max_pages"
        return run


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


def load_into_mongo(out_dir: Path | str, store: ResponseStore) -> int:
    """Upsert every page, error bodies included with their status, into a raw-response store."""
    out = Path(out_dir)
    loaded = 0
    for record in read_manifest(out):
        body = _page_path(out, record).read_text(encoding="utf-8", errors="replace")
        store.put(record.filename, body, status=record.status or 0, url=record.url,
                  fetched_at=datetime.fromisoformat(record.fetched_at))
        loaded += 1
    return loaded
