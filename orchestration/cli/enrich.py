"""``creatorlens enrich``: enrich a creator CSV export from the profile API.

Reads a StarNgage-like CSV (same header map as the CSV source), fetches each username's profile
through :class:`resources.profile_api.ProfileClient` (rate limit, retries, cache), fills the
category (GENRE) and bio (details) cells only where they are empty, and adds the API's other
fields as ``ig_*`` columns. Every input row is written back, in order, malformed ones untouched.

Progress is saved twice: the profile cache after every profile, and the output CSV (written
atomically) after every batch. A killed run started again skips everything already cached.
"""

from __future__ import annotations

import csv
import io
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from assets.profiles.filling import FILL_FIELDS, CoverageReport, coverage, fill_creator
from assets.sources.parsing import DEFAULT_HEADER_MAP, _resolve_columns
from creatorlens.fields import normalise_username
from resources.profile_api import FetchStatus

if TYPE_CHECKING:
    from resources.profile_api import ProfileClient, ProfileResult

# Filled in place (only where empty); the rest of the API's answer goes to these new columns.
IN_PLACE = ("category", "bio")
EXTRA_COLUMNS = {
    "full_name": "ig_full_name",
    "followers": "ig_followers",
    "is_business": "ig_is_business",
    "is_verified": "ig_is_verified",
}
STATUS_COLUMN = "enrich_status"
FETCHED_AT_COLUMN = "enriched_at"


@dataclass
class CsvTable:
    headers: list[str]
    rows: list[list[str]]
    bom: bool = False


@dataclass
class EnrichOutcome:
    report: CoverageReport
    rows: int
    usernames: int
    processed: int
    checkpoints: int
    statuses: dict[str, int] = field(default_factory=dict)


def read_table(path: Path) -> CsvTable:
    raw = path.read_bytes()
    bom = raw.startswith(b"\xef\xbb\xbf")
    text = raw.decode("utf-8-sig", errors="replace")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    while rows and not any(cell.strip() for cell in rows[0]):
        rows.pop(0)
    if not rows:
        raise ValueError(f"{path}: empty CSV")
    return CsvTable(rows[0], rows[1:], bom)


def write_table(path: Path, table: CsvTable) -> None:
    """Write atomically: a killed run leaves the previous checkpoint or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("w", encoding="utf-8-sig" if table.bom else "utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(table.headers)
        writer.writerows(table.rows)
    os.replace(tmp, path)


def _column(table: CsvTable, name: str, rows: list[int]) -> int:
    """Index of ``name`` in the headers, appending the column (empty cells in ``rows``) when missing."""
    if name in table.headers:
        return table.headers.index(name)
    table.headers.append(name)
    for i in rows:
        table.rows[i].append("")
    return len(table.headers) - 1


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class CsvEnricher:
    """Applies profile results to the rows of one table; remembers what each row looked like before."""

    def __init__(self, table: CsvTable) -> None:
        self.table = table
        width = len(table.headers)
        found = _resolve_columns(table.headers, DEFAULT_HEADER_MAP)
        if "username" not in found:
            raise ValueError(f"no username column in {table.headers!r}")
        self.username_col = found["username"]
        self.source_cols = {f: found[f] for f in ("full_name", "followers") if f in found}
        # Rows with a different cell count are malformed: written back untouched.
        self.good = [i for i, row in enumerate(table.rows) if len(row) == width]
        self.cols = {f: found.get(f) for f in IN_PLACE}
        for f in IN_PLACE:
            if self.cols[f] is None:
                self.cols[f] = _column(table, f, self.good)
        self.extra_cols = {f: _column(table, c, self.good) for f, c in EXTRA_COLUMNS.items()}
        self.status_col = _column(table, STATUS_COLUMN, self.good)
        self.fetched_col = _column(table, FETCHED_AT_COLUMN, self.good)
        self.by_user: dict[str, list[int]] = {}
        for i in self.good:
            username = normalise_username(table.rows[i][self.username_col])
            if username is None:
                table.rows[i][self.status_col] = "invalid_username"
            else:
                self.by_user.setdefault(username, []).append(i)
        self.before = {i: self._known(table.rows[i]) for i in self.good}
        self.api_business: dict[str, bool | None] = {}

    def _known(self, row: list[str]) -> dict[str, Any]:
        """What the row knows per FILL_FIELD (the ``ig_*`` columns count for the fields they hold)."""
        known: dict[str, Any] = {f: row[self.cols[f]] for f in IN_PLACE}
        for f, col in self.source_cols.items():
            known[f] = row[col]
        for f, col in self.extra_cols.items():
            if col < len(row) and row[col].strip():
                known[f] = row[col]
        return known

    def apply(self, result: ProfileResult) -> None:
        if result.status == FetchStatus.OK:
            self.api_business[result.username] = (result.profile or {}).get("is_business")
        for i in self.by_user.get(result.username, ()):
            row = self.table.rows[i]
            row[self.status_col] = str(result.status)
            row[self.fetched_col] = result.fetched_at.isoformat(timespec="seconds")
            if result.status != FetchStatus.OK or not result.profile:
                continue
            current = {f: row[self.cols[f]] for f in IN_PLACE}
            filled, _ = fill_creator(current, result.profile, IN_PLACE)
            for f in IN_PLACE:
                row[self.cols[f]] = _cell(filled[f])
            for f, col in self.extra_cols.items():
                if not row[col].strip():
                    row[col] = _cell(result.profile.get(f))

    def report(self) -> CoverageReport:
        before = [self.before[i] for i in self.good]
        after = [self._known(self.table.rows[i]) for i in self.good]
        statuses = [self.table.rows[i][self.status_col] or None for i in self.good]
        return coverage(before, after, statuses, FILL_FIELDS, self.api_business.values())


def enrich_csv(
    input_path: Path,
    output_path: Path,
    client: ProfileClient,
    *,
    limit: int | None = None,
    force: bool = False,
    progress: Callable[[ProfileResult], None] | None = None,
) -> EnrichOutcome:
    """Enrich ``input_path`` into ``output_path``; see the module docstring."""
    table = read_table(input_path)
    enricher = CsvEnricher(table)
    usernames = list(enricher.by_user)
    if force and output_path.exists() and output_path.resolve() != input_path.resolve():
        output_path.unlink()  # --force clears the checkpoint too (the client clears the cache)
    checkpoints = 0

    def checkpoint() -> None:
        nonlocal checkpoints
        write_table(output_path, table)
        checkpoints += 1

    processed = 0
    for result in client.fetch_many(usernames, force=force, limit=limit, on_batch=checkpoint):
        enricher.apply(result)
        processed += 1
        if progress is not None:
            progress(result)
    checkpoint()
    report = enricher.report()
    return EnrichOutcome(report, len(table.rows), len(usernames), processed, checkpoints, dict(report.statuses))


# --------------------------------------------------------------------------- command line


@click.command("enrich")
@click.option("--input", "input_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Creator CSV export (StarNgage-like).")
@click.option("--output", "output_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Enriched CSV; rewritten after every batch (a checkpoint).")
@click.option("--rate-limit", type=click.FloatRange(min=0, min_open=True),
              help="Requests per minute [default: CREATORLENS_PROFILE_RATE_LIMIT or 10].")
@click.option("--batch-size", type=click.IntRange(min=1), help="Profiles between pauses [default: 100].")
@click.option("--batch-pause", type=click.FloatRange(min=0), help="Seconds to pause after each batch [default: 1800].")
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N usernames (a trial run).")
@click.option("--force", is_flag=True, help="Forget cached profiles and the checkpoint; fetch everything again.")
@click.option("--jitter", nargs=2, type=click.FloatRange(min=0), metavar="MIN MAX",
              help="Random extra delay per request, seconds [default: 2 4].")
@click.option("--url-template", help="Profile URL with {username} [default: CREATORLENS_PROFILE_URL_TEMPLATE].")
@click.option("--cache", "cache_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Profile cache (SQLite) [default: <state dir>/profile_cache.sqlite].")
@click.pass_context
def enrich_command(ctx: click.Context, input_path: Path, output_path: Path, rate_limit: float | None,
                   batch_size: int | None, batch_pause: float | None, limit: int | None, force: bool,
                   jitter: tuple[float, float] | None, url_template: str | None, cache_path: Path | None) -> None:
    """Fill empty category/bio cells of a creator CSV from the profile API; print a coverage report."""
    from resources.profile_api import ProfileApi

    overrides = {
        "profile_rate_limit": rate_limit,
        "profile_batch_size": batch_size,
        "profile_batch_pause_s": batch_pause,
        "profile_url_template": url_template,
        "profile_cache": cache_path,
        "profile_jitter_min_s": jitter[0] if jitter else None,
        "profile_jitter_max_s": jitter[1] if jitter else None,
    }
    settings = ctx.obj["settings"].model_copy(update={k: v for k, v in overrides.items() if v is not None})
    api = ProfileApi.from_settings(settings)
    if not api.configured:
        raise click.ClickException("no profile API configured: set CREATORLENS_PROFILE_URL_TEMPLATE or --url-template")
    with api.open_client() as client:
        total = len(CsvEnricher(read_table(input_path)).by_user)
        total = min(total, limit) if limit else total
        with click.progressbar(length=total, label="profiles", show_eta=True, show_pos=True,
                               file=sys.stderr) as bar:
            outcome = enrich_csv(input_path, output_path, client, limit=limit, force=force,
                                 progress=lambda _result: bar.update(1))
        stats = client.stats
    click.echo(outcome.report.text())
    click.echo(f"requests {stats.requests} ({dict(stats.responses)}), fetched {stats.fetched}, from cache "
               f"{stats.cached}, batch pauses {stats.batch_pauses}, long pauses {stats.long_pauses}; "
               f"{outcome.rows} rows written to {output_path} ({outcome.checkpoints} checkpoints)")
