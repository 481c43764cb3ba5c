"""``creatorlens fetch``: pages of posts and reels from a TikHub-like API, local files first.

For each username: the posts endpoint, then the reels endpoint, page after page following the
API's cursor (:class:`resources.paged.PagedFetcher`: ``pagination_token`` / ``max_id`` style,
stopping when the answer says there is no more, on a repeated cursor, after N pages, or on an
error that survived the retries; 429 answers wait their ``Retry-After``). Each page is written,
as received, into the sources' JSON folder (``user_posts(<username>)_0001.json`` …, atomically),
which ``creatorlens batch`` reads like any dump; error bodies go to ``errors/`` with their reason.

While each page's signed image URLs are still valid, the page's images are downloaded next to it
(``media/<platform>/<post_id>_<position>.<ext>``, :mod:`assets.images.local_copies`), with the
images stage's own fetch function and limits; the images stage uses these copies before the URL.
With ``--mongo`` the pages are then upserted into MongoDB (``MONGODB_URL``) as raw responses.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import click
import httpx

from assets.images.local_copies import find_local_copy, save_local_copy
from assets.sources.parsing import normalise_documents
from creatorlens.fields import normalise_username
from creatorlens.settings import Settings
from resources.paged import (
    ERROR_DIR,
    PagedEndpoint,
    PagedFetcher,
    PagedRun,
    PageRecord,
    load_into_mongo,
    record_run,
)

POSTS, REELS = "user_posts", "user_reels"


@dataclass
class FetchSummary:
    """What one ``fetch`` did, per user and in total."""

    users: list[str] = field(default_factory=list)
    runs: list[PagedRun] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    post_ids: set[tuple[str, str]] = field(default_factory=set)
    images: Counter = field(default_factory=Counter)  # saved / already_saved / failed
    image_failures: Counter = field(default_factory=Counter)  # by reason
    mongo_uploaded: int | None = None
    mongo_error: str | None = None

    @property
    def pages(self) -> list[PageRecord]:
        return [p for run in self.runs for p in run.pages]

    @property
    def ok_pages(self) -> int:
        return sum(p.ok for p in self.pages)

    def fetched_users(self) -> list[str]:
        return sorted({r.username for r in self.runs if any(p.ok for p in r.pages)})

    def text(self) -> str:
        failed_pages = len(self.pages) - self.ok_pages
        stops = ", ".join(f"{r.username}/{r.endpoint}: {r.stop_reason}" for r in self.runs) or "none"
        lines = [
            (f"fetched {len(self.fetched_users())} of {len(self.users) + len(self.invalid)} users: "
             f"{self.ok_pages} pages saved, {failed_pages} error pages kept; {len(self.post_ids)} posts"),
            (f"images: {self.images['saved']} saved, {self.images['already_saved']} already saved, "
             f"{self.images['failed']} failed" + (f" {dict(self.image_failures)}" if self.image_failures else "")),
            f"stops: {stops}",
        ]
        if self.invalid:
            lines.append(f"invalid usernames (skipped): {', '.join(self.invalid)}")
        if self.mongo_uploaded is not None:
            lines.append(f"MongoDB: {self.mongo_uploaded} pages upserted")
        if self.mongo_error:
            lines.append(f"MongoDB upload FAILED ({self.mongo_error}); the pages are on disk, rerun with --mongo")
        return "\n".join(lines)


def endpoint_url(base: str, endpoint: str) -> str:
    """``endpoint`` (path + query) under ``base``; an absolute URL is used as it is."""
    if urlparse(endpoint).scheme in ("http", "https"):
        return endpoint
    return f"{base.rstrip('/')}/{endpoint.lstrip('/')}"


def endpoints(settings: Settings, post_pages: int, reel_pages: int) -> list[PagedEndpoint]:
    base = settings.fetch_api_url or ""
    out = []
    if post_pages > 0:
        out.append(PagedEndpoint(POSTS, endpoint_url(base, settings.fetch_posts_endpoint),
                                 cursor_param=settings.fetch_posts_cursor_param, max_pages=post_pages))
    if reel_pages > 0:
        out.append(PagedEndpoint(REELS, endpoint_url(base, settings.fetch_reels_endpoint),
                                 cursor_param=settings.fetch_reels_cursor_param, max_pages=reel_pages))
    return out


def page_images(username: str, path: Path, doc: Any) -> list[tuple[str, str, int, str]]:
    """``(platform, post_id, position, url)`` of every image of one saved page, read by the sources'
    own parser, numbered as the images stage numbers them (carousel children 1…n, else 1)."""
    read = normalise_documents(username, [(str(path), doc)])
    out = []
    for post in read[1]:
        urls = [img.url for img in post.images] if post.images else [post.media_url]
        for position, url in enumerate(urls, start=1):
            if isinstance(url, str) and urlparse(url).scheme in ("http", "https"):
                out.append((post.platform, post.post_id, position, url))
    return out


class Fetch:
    """One ``creatorlens fetch`` over a JSON folder: pages, then their images, then MongoDB."""

    def __init__(self, settings: Settings, *, echo: Callable[[str], None] = click.echo,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings
        self.json_dir = settings.resolved_json_dir
        self.echo = echo
        self.sleep = sleep
        self.summary = FetchSummary()
        from assets.images.imaging import ImageLimits  # numpy/Pillow/pdqhash: loaded only when fetching

        self.limits = ImageLimits(max_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels,
                                  timeout_s=settings.http_timeout_s)

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.settings.fetch_api_token is not None:
            headers["Authorization"] = f"Bearer {self.settings.fetch_api_token.get_secret_value()}"
        return headers

    def _download(self, job: tuple[str, str, int, str], client: httpx.Client) -> tuple[str, str | None]:
        from assets.images.imaging import ImageError, fetch_bytes_retrying

        platform, post_id, position, url = job
        if find_local_copy(self.json_dir, platform, post_id, position) is not None:
            return "already_saved", None  # a re-fetch keeps the copy made while the URL was valid
        try:
            data = fetch_bytes_retrying(url, limits=self.limits, client=client)
        except ImageError as exc:
            return "failed", exc.reason
        try:
            save_local_copy(self.json_dir, platform, post_id, position, data)
        except OSError:  # disk full, permissions: counted; the image stage will use the URL
            return "failed", "write_error"
        return "saved", None

    def _on_page(self, endpoint: str, pool: ThreadPoolExecutor, client: httpx.Client) -> Callable:
        def on_page(record: PageRecord, doc: Any) -> None:
            where = f"{record.username} {endpoint} page {record.page}"
            if not record.ok:
                self.echo(f"  {where}: FAILED {record.error} (body kept in {ERROR_DIR}/{record.filename})")
                return
            jobs = page_images(record.username, self.json_dir / record.filename, doc)
            outcomes = list(pool.map(lambda job: self._download(job, client), jobs))
            counts = Counter(outcome for outcome, _ in outcomes)
            reasons = Counter(reason for _, reason in outcomes if reason)
            self.summary.images.update(counts)
            self.summary.image_failures.update(reasons)
            posts = {(p, i) for p, i, _, _ in jobs}
            self.summary.post_ids.update(posts)
            failed = f" {dict(reasons)}" if reasons else ""
            self.echo(f"  {where}: {len(posts)} posts; images {counts['saved']} saved, "
                      f"{counts['already_saved']} already saved, {counts['failed']} failed{failed}")
        return on_page

    def run(self, usernames: list[str], post_pages: int, reel_pages: int, *,
            http: httpx.Client | None = None) -> FetchSummary:
        s = self.settings
        self.json_dir.mkdir(parents=True, exist_ok=True)
        for raw in usernames:
            username = normalise_username(raw)
            if username is None:
                self.summary.invalid.append(raw)
                self.echo(f"{raw!r}: not a valid username, skipped")
            elif username not in self.summary.users:
                self.summary.users.append(username)
        todo = endpoints(s, post_pages, reel_pages)
        with (PagedFetcher(self.json_dir, http=http, headers=self._headers(), retries=s.fetch_retries,
                           backoff_s=s.fetch_backoff_s, timeout_s=s.fetch_timeout_s, sleep=self.sleep) as fetcher,
              httpx.Client(timeout=self.limits.timeout_s, follow_redirects=True) as images,
              ThreadPoolExecutor(max_workers=s.fetch_image_workers, thread_name_prefix="fetch-images") as pool):
            for n, username in enumerate(self.summary.users, 1):
                self.echo(f"[{n}/{len(self.summary.users)}] {username}")
                for endpoint in todo:
                    run = fetcher.fetch(endpoint, username, on_page=self._on_page(endpoint.name, pool, images))
                    record_run(self.json_dir, run)
                    self.summary.runs.append(run)
                    ok = sum(p.ok for p in run.pages)
                    self.echo(f"  {username} {endpoint.name}: {ok} pages saved in {run.requests} requests, "
                              f"stopped: {run.stop_reason}" + (f" ({run.error})" if run.error else ""))
                    if run.error:  # the API refused this user (or is down): go on with the next user
                        break
        return self.summary

    def upload(self) -> None:
        """Upsert this fetch's pages (error bodies included, with their status) into MongoDB."""
        from pymongo.errors import PyMongoError

        from resources.mongo import open_store

        s = self.settings
        try:
            with open_store(s.mongodb_url or "", s.mongodb_database, s.mongodb_collection) as store:
                self.summary.mongo_uploaded = load_into_mongo(self.json_dir, store, self.summary.pages)
        except PyMongoError as exc:
            self.summary.mongo_error = f"{type(exc).__name__}: {exc}"[:300]


HELP = f"""Fetch USERNAME... from a TikHub-like posts/reels API into the local sources, images included.

\b
For each user, the posts endpoint then the reels endpoint, page by page following the API's
cursor (pagination_token / next_max_id; has_more / more_available = false ends it). A run also
stops after --post-pages / --reel-pages pages, when the API hands back a cursor it already gave
(recorded as 'repeated_cursor', never looped), or on an error: 429 and 5xx answers are retried
(CREATORLENS_FETCH_RETRIES times, waiting what Retry-After says, else exponential backoff); an
error that stays (a JSON {{"code", "message"}} body, an HTML page, bad JSON) is saved under
errors/ with its reason, and the command goes on with the next user.

\b
Where things go (the sources' JSON folder, CREATORLENS_JSON_DIR):
  {POSTS}(<user>)_0001.json, {REELS}(<user>)_0001.json ...  each page exactly as received,
                        written atomically; `creatorlens batch` reads them like any dump
  errors/               error bodies (not read as sources)
  manifest.jsonl        one line per page: status, URL, cursor, time, error
  runs.jsonl            one line per user and endpoint: pages, requests, stop reason
  media/<platform>/<post_id>_<position>.<ext>
                        each post's images (every carousel child; a reel's cover), downloaded
                        now, while the signed URLs are valid, with the images stage's size and
                        content-type limits; the images stage uses them before the URL
A re-fetch rewrites the same page files and keeps images already saved (no duplicates).

\b
Settings: CREATORLENS_FETCH_API_URL (base URL), CREATORLENS_FETCH_API_TOKEN (sent as a Bearer
token), CREATORLENS_FETCH_POSTS_ENDPOINT / _REELS_ENDPOINT (path?query with {{username}}),
CREATORLENS_FETCH_POSTS_CURSOR_PARAM / _REELS_CURSOR_PARAM, CREATORLENS_FETCH_IMAGE_WORKERS
(downloads at once), CREATORLENS_FETCH_TIMEOUT_S, CREATORLENS_FETCH_BACKOFF_S.
--mongo then upserts this fetch's pages (error bodies with their status) into MongoDB
(MONGODB_URL, CREATORLENS_MONGODB_DATABASE / _COLLECTION); the files stay the first copy.

Exit status: 1 only when no page at all could be fetched; otherwise 0, with each failure listed.
"""


@click.command("fetch", help=HELP)
@click.argument("usernames", nargs=-1, required=True)
@click.option("--post-pages", type=click.IntRange(min=0),
              help="Pages of posts per user; 0 = none [default: CREATORLENS_FETCH_POST_PAGES or 3].")
@click.option("--reel-pages", type=click.IntRange(min=0),
              help="Pages of reels per user; 0 = none [default: CREATORLENS_FETCH_REEL_PAGES or 1].")
@click.option("--mongo", is_flag=True, help="Also upsert the fetched pages into MongoDB (MONGODB_URL).")
@click.option("--api-url", help="Base URL of the API [default: CREATORLENS_FETCH_API_URL].")
@click.option("--json-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder the pages and images go to [default: the sources' JSON folder].")
@click.pass_context
def fetch_command(ctx: click.Context, usernames: tuple[str, ...], post_pages: int | None, reel_pages: int | None,
                  mongo: bool, api_url: str | None, json_dir: Path | None) -> None:
    overrides = {"fetch_api_url": api_url, "json_dir": json_dir}
    settings: Settings = ctx.obj["settings"].model_copy(update={k: v for k, v in overrides.items() if v is not None})
    if not settings.fetch_api_url and not all(
            urlparse(e).scheme for e in (settings.fetch_posts_endpoint, settings.fetch_reels_endpoint)):
        raise click.ClickException("no fetch API configured: set CREATORLENS_FETCH_API_URL or --api-url")
    if mongo and not settings.mongodb_url:
        raise click.ClickException("--mongo needs MONGODB_URL")
    post_pages = settings.fetch_post_pages if post_pages is None else post_pages
    reel_pages = settings.fetch_reel_pages if reel_pages is None else reel_pages
    if post_pages == 0 and reel_pages == 0:
        raise click.ClickException("nothing to fetch: --post-pages and --reel-pages are both 0")
    started = time.perf_counter()
    job = Fetch(settings)
    click.echo(f"fetching {len(usernames)} users into {settings.resolved_json_dir} "
               f"({post_pages} post pages, {reel_pages} reel pages each)")
    summary = job.run(list(usernames), post_pages, reel_pages)
    if mongo and summary.pages:
        job.upload()
    click.echo(summary.text())
    click.echo(f"done in {time.perf_counter() - started:.1f}s")
    if summary.ok_pages == 0:
        sys.exit(1)
