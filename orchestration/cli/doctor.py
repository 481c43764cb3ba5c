"""``creatorlens doctor``: one line per check of what the pipeline needs, and how to fix each.

Each check returns a :class:`Check` and catches its own errors (a crashed check is a failure
line, never a traceback). Doctor starts nothing and writes nothing: a stopped embedded warehouse
is reported, not started.

Exit status: 0 when everything needed is there (notes allowed), 1 when something needed is
missing or broken. What is a note rather than a failure:

* the embedded warehouse stopped, or not created yet: every command starts it for its duration
  (and ``init`` creates it); its migrations are then not checked;
* pending migrations: the next command that opens the warehouse applies them (a changed or
  unknown applied migration is a failure: commands refuse to run on it);
* the default (sample) source folders missing on a fresh state (a folder you set and that is
  missing or unreadable is a failure);
* profile API, LLM, model weights without which a stage is skipped (``--require-weights``
  makes missing weights failures), Chromium (only the browser tests use it).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import click

from creatorlens.settings import Settings

OK, NOTE, FAIL = "ok", "note", "fail"
MARKS = {OK: "✓", NOTE: "–", FAIL: "✗"}
ASCII_MARKS = {OK: "ok", NOTE: "--", FAIL: "XX"}
DEFAULT_MIN_FREE_GIB = 2.0
DEFAULT_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class Check:
    name: str
    state: str  # OK | NOTE | FAIL
    detail: str
    fix: str | None = None


def _redact(url: str) -> str:
    """A URL without its password (``scheme://user:***@host``)."""
    return re.sub(r"(//[^/:@]*):[^@/]*@", r"\1:***@", url)


def _error(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or "no message"
    return f"{type(exc).__name__}: {text[:300]}"


# ---- warehouse ------------------------------------------------------------------------------

def _connect(url: str, timeout_s: float):
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    from resources.warehouse import normalise_url

    engine = sa.create_engine(normalise_url(url), poolclass=NullPool,
                              connect_args={"connect_timeout": max(1, round(timeout_s))})
    return engine, engine.connect()


def check_warehouse(s: Settings, timeout_s: float) -> list[Check]:
    """Reachable (embedded: running, or stopped and startable) and migrated."""
    from resources import pgserver

    if s.is_embedded:
        st = pgserver.status(s.resolved_pgdata)
        if not st.initialised:
            return [Check("warehouse", NOTE, f"embedded PostgreSQL not created yet at {st.pgdata}; "
                          "any command creates and starts it", "creatorlens init")]
        if not st.running:
            return [Check("warehouse", NOTE, f"embedded PostgreSQL stopped ({st.pgdata}); every command starts "
                          "it for its duration, migrations not checked",
                          "creatorlens warehouse start keeps it up")]
        url, where = pgserver.url(s.resolved_pgdata), f"embedded, pid {st.pid}"
        fix = "creatorlens warehouse stop; creatorlens warehouse start"
    else:
        url, where, fix = s.database_url, _redact(s.database_url), "check DATABASE_URL and that the server is up"
    try:
        engine, conn = _connect(url, timeout_s)
    except Exception as exc:
        return [Check("warehouse", FAIL, f"cannot connect ({where}): {_error(exc)}", fix)]
    try:
        with conn:
            version = conn.exec_driver_sql("SHOW server_version").scalar()
            vector = conn.exec_driver_sql("SELECT extversion FROM pg_extension WHERE extname = 'vector'").scalar()
            reach = Check("warehouse", OK, f"PostgreSQL {version} reachable ({where})"
                          + (f", pgvector {vector}" if vector else ""))
            return [reach, _check_migrations(conn)]
    finally:
        engine.dispose()


def _check_migrations(conn) -> Check:
    from resources.warehouse import discover_migrations

    try:
        files = discover_migrations()
    except Exception as exc:
        return Check("migrations", FAIL, f"migration files unusable: {_error(exc)}", "fix the files under sql/")
    exists = conn.exec_driver_sql("SELECT to_regclass('schema_migrations') IS NOT NULL").scalar()
    done = dict(conn.exec_driver_sql("SELECT version, checksum FROM schema_migrations").all()) if exists else {}
    known = {m.version: m for m in files}
    changed = [m.path.name for m in files if m.version in done and done[m.version] != m.checksum]
    unknown = sorted(v for v in done if v not in known)
    pending = [m.path.name for m in files if m.version not in done]
    if changed or unknown:
        why = []
        if changed:
            why.append(f"changed after they were applied: {', '.join(changed)}")
        if unknown:
            why.append(f"applied but not in sql/ (a newer checkout?): {', '.join(unknown)}")
        return Check("migrations", FAIL, "; ".join(why),
                     "restore the applied sql/ files and add a new migration instead")
    if pending:
        shown = ", ".join(pending[:3]) + (f" … (+{len(pending) - 3})" if len(pending) > 3 else "")
        return Check("migrations", NOTE, f"{len(pending)} of {len(files)} pending ({shown}); the next command "
                     "that opens the warehouse applies them", "creatorlens init")
    return Check("migrations", OK, f"all {len(files)} applied, checksums match")


# ---- sources --------------------------------------------------------------------------------

def _folder(name: str, path: Path, explicit: bool, variable: str, count: Callable[[Path], int], what: str) -> Check:
    if not path.exists():
        if explicit:
            return Check(name, FAIL, f"{path} does not exist", f"create it or fix {variable}")
        return Check(name, NOTE, f"{path} does not exist yet (sample folder)",
                     f"creatorlens sample-data, or set {variable}")
    if not path.is_dir():
        return Check(name, FAIL, f"{path} is not a folder", f"fix {variable}")
    if not os.access(path, os.R_OK | os.X_OK):
        return Check(name, FAIL, f"{path} is not readable by this user", f"chmod u+rx {path}")
    n = count(path)
    return Check(name, OK, f"{path}: {n} {what} file{'' if n == 1 else 's'}")


def check_sources(s: Settings) -> list[Check]:
    from assets.sources.parsing import is_json_dump
    from resources.sources import SourceFiles

    src = SourceFiles.from_settings(s)
    return [
        _folder("sources: csv", Path(src.csv_dir), s.csv_dir is not None, "CREATORLENS_CSV_DIR",
                lambda p: sum(1 for f in p.glob("*.csv") if f.is_file()), "CSV"),
        _folder("sources: json", Path(src.json_dir), s.json_dir is not None, "CREATORLENS_JSON_DIR",
                lambda p: sum(1 for f in p.iterdir() if is_json_dump(f)), "JSON"),
    ]


def check_mongodb(s: Settings, timeout_s: float) -> Check:
    if not s.mongodb_url:
        return Check("mongodb", NOTE, "MONGODB_URL not set: no MongoDB source")
    import pymongo

    where = _redact(s.mongodb_url)
    ms = max(1, int(timeout_s * 1000))
    try:
        client = pymongo.MongoClient(s.mongodb_url, serverSelectionTimeoutMS=ms, connectTimeoutMS=ms,
                                     socketTimeoutMS=ms)
    except Exception as exc:
        return Check("mongodb", FAIL, f"bad MONGODB_URL {where}: {_error(exc)}", "fix MONGODB_URL")
    try:
        client.admin.command("ping")
        n = client[s.mongodb_database][s.mongodb_collection].estimated_document_count()
        return Check("mongodb", OK, f"{where} reachable; {s.mongodb_database}.{s.mongodb_collection}: ~{n} documents")
    except Exception as exc:
        why = str(exc).split(" (configured timeouts")[0].split(", Timeout:")[0]  # not pymongo's topology dump
        return Check("mongodb", FAIL, f"{where} not reachable within {timeout_s:g} s: {type(exc).__name__}: {why}",
                     "start MongoDB or fix MONGODB_URL (unset it to drop the MongoDB source)")
    finally:
        client.close()


# ---- APIs -----------------------------------------------------------------------------------

def check_profile_api(s: Settings) -> Check:
    import json

    from resources.profile_api import ProfileApi

    api = ProfileApi.from_settings(s)
    if not api.configured:
        return Check("profile API", NOTE, "not configured: enrichment passes profiles through",
                     "set CREATORLENS_PROFILE_URL_TEMPLATE to a URL with {username}")
    template = api.url_template or ""
    if "{username}" not in template:
        return Check("profile API", FAIL, f"URL template has no {{username}}: {_redact(template)}",
                     "fix CREATORLENS_PROFILE_URL_TEMPLATE")
    for variable, raw in (("CREATORLENS_PROFILE_HEADERS", s.profile_headers and s.profile_headers.get_secret_value()),
                          ("CREATORLENS_PROFILE_MAPPING", s.profile_mapping)):
        if raw:
            try:
                parsed = json.loads(raw)
            except ValueError as exc:
                return Check("profile API", FAIL, f"{variable} is not JSON: {exc}", f"fix {variable}")
            if not isinstance(parsed, dict):
                return Check("profile API", FAIL, f"{variable} is not a JSON object", f"fix {variable}")
    host = re.sub(r"^([a-z]+://[^/]+).*$", r"\1", template)
    return Check("profile API", OK, f"configured ({host}/…, {s.profile_rate_limit:g} requests/min)"
                 + (", headers set" if s.profile_headers else ""))


def check_llm(s: Settings) -> Check:
    from resources.llm import LlmClient

    llm = LlmClient.from_settings(s)
    if llm.configured:
        return Check("LLM", OK, f"{llm.model} at {_redact(llm.base_url or '')}"
                     + (", API key set" if s.llm_api_key else ", no API key (local server)"))
    if llm.base_url or llm.model:
        missing = "LLM_MODEL" if llm.base_url else "LLM_BASE_URL"
        return Check("LLM", FAIL, f"half configured: {missing} is not set", f"set {missing}")
    return Check("LLM", NOTE, "not configured: no LLM profiles", "set LLM_BASE_URL and LLM_MODEL")


# ---- model weights, Chromium, disk ----------------------------------------------------------

def check_models(s: Settings, require: bool) -> list[Check]:
    from gpu_ops.registry import CATALOG, available, get_spec, problems, pull_command

    cache = s.model_cache
    missing = FAIL if require else NOTE
    out: list[Check] = []
    for family, specs in CATALOG.items():
        name = f"weights: {family}"
        try:
            forced = s.model_backends.get(family)
            if family in s.model_weights:
                path = Path(s.model_weights[family])
                out.append(Check(name, OK, f"{path} (CREATORLENS_MODEL_WEIGHTS)") if path.exists() else
                           Check(name, FAIL, f"{path} (CREATORLENS_MODEL_WEIGHTS) does not exist",
                                 "fix CREATORLENS_MODEL_WEIGHTS"))
                continue
            if forced:
                try:
                    spec = get_spec(family, forced)
                except KeyError as exc:
                    out.append(Check(name, FAIL, str(exc).strip("'\""), "fix CREATORLENS_MODEL_BACKENDS"))
                    continue
                found = problems(cache, spec)
                out.append(Check(name, OK, f"{spec.backend} ({spec.model_id}, forced) ready") if not found else
                           Check(name, missing, f"{spec.backend} (forced) not usable: {'; '.join(found)}; "
                                 "its stages are skipped", pull_command(family, spec.backend)))
                continue
            ready = next((spec for spec in specs if available(cache, spec)), None)
            if ready is None:
                out.append(Check(name, missing, f"no weights in {cache / family} ({specs[0].model_id}); "
                                 "its stages are skipped", pull_command(family)))
                continue
            how = "bundled" if ready.bundled else "ready"
            detail = f"{ready.backend} ({ready.model_id}) {how}"
            if ready is not specs[0]:
                detail += f"; preferred {specs[0].backend}: `{pull_command(family, specs[0].backend)}`"
            out.append(Check(name, OK, detail))
        except Exception as exc:
            out.append(Check(name, FAIL, f"check failed: {_error(exc)}", pull_command(family)))
    return out


def check_chromium() -> Check:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path:
        return Check("chromium", OK, f"{path} (browser tests)")
    return Check("chromium", NOTE, "not installed: only the browser tests need it", "make browser")


def _existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_disk(s: Settings, min_free_gib: float) -> Check:
    where = _existing(s.state_dir)
    usage = shutil.disk_usage(where)
    free = usage.free / 2**30
    detail = f"{free:.1f} GiB free of {usage.total / 2**30:.0f} GiB at {where}"
    if free < min_free_gib:
        return Check("disk", FAIL, f"{detail}, under {min_free_gib:g} GiB",
                     "free space, or set CREATORLENS_STATE_DIR to a larger disk (threshold: --min-free-gib)")
    return Check("disk", OK, f"{detail} (needs {min_free_gib:g})")


# ---- the command ----------------------------------------------------------------------------

def run_checks(s: Settings, *, timeout_s: float = DEFAULT_TIMEOUT_S, min_free_gib: float = DEFAULT_MIN_FREE_GIB,
               require_weights: bool = False) -> list[Check]:
    steps: list[tuple[str, Callable[[], Check | list[Check]]]] = [
        ("warehouse", lambda: check_warehouse(s, timeout_s)),
        ("sources", lambda: check_sources(s)),
        ("mongodb", lambda: check_mongodb(s, timeout_s)),
        ("profile API", lambda: check_profile_api(s)),
        ("LLM", lambda: check_llm(s)),
        ("weights", lambda: check_models(s, require_weights)),
        ("chromium", check_chromium),
        ("disk", lambda: check_disk(s, min_free_gib)),
    ]
    checks: list[Check] = []
    for name, step in steps:
        try:
            result = step()
        except Exception as exc:  # a check never ends the command: its failure is its line
            result = Check(name, FAIL, f"check failed: {_error(exc)}")
        checks.extend(result if isinstance(result, list) else [result])
    return checks


def _marks() -> dict[str, str]:
    try:
        "".join(MARKS.values()).encode(sys.stdout.encoding or "ascii")
        return MARKS
    except (UnicodeEncodeError, LookupError):
        return ASCII_MARKS


def render(checks: list[Check]) -> str:
    marks = _marks()
    width = max(len(c.name) for c in checks)
    lines = []
    for c in checks:
        line = f"{marks[c.state]} {c.name:<{width}}  {c.detail}"
        if c.fix:
            line += f"  → {c.fix}" if c.state == FAIL else f"  ({c.fix})"
        lines.append(line)
    fails = sum(c.state == FAIL for c in checks)
    notes = sum(c.state == NOTE for c in checks)
    lines.append(f"\n{len(checks)} checks: {len(checks) - fails - notes} ok, {notes} notes, {fails} failed")
    text = "\n".join(lines)
    return text if marks is MARKS else text.replace("→", "->").replace("…", "...").replace("–", "-")


@click.command("doctor")
@click.option("--min-free-gib", type=float, default=DEFAULT_MIN_FREE_GIB, show_default=True,
              help="Free space the state folder's disk needs; less is a failure.")
@click.option("--timeout", "timeout_s", type=float, default=DEFAULT_TIMEOUT_S, show_default=True,
              help="Seconds to wait for the warehouse and MongoDB connections.")
@click.option("--require-weights", is_flag=True,
              help="Missing model weights are failures, not notes (a GPU / production host).")
@click.pass_context
def doctor(ctx: click.Context, min_free_gib: float, timeout_s: float, require_weights: bool) -> None:
    """Check what the pipeline needs, one line each: ✓ ok, – note, ✗ failure (with its fix).

    \b
    * warehouse: embedded server running (stopped is fine: commands start it) or
      DATABASE_URL reachable; migrations: none pending, applied checksums match
    * sources: CSV and JSON folders readable, with their file counts
    * mongodb: MONGODB_URL (when set) answers within --timeout
    * profile API, LLM: settings present (optional: missing is a note)
    * weights: per model family, ready / bundled, or the `creatorlens models pull` command
    * chromium: for the browser tests (a note)
    * disk: free space in the state folder (at least --min-free-gib)

    Starts and writes nothing. Exit status 1 when something needed is missing, else 0.
    """
    checks = run_checks(ctx.obj["settings"], timeout_s=timeout_s, min_free_gib=min_free_gib,
                        require_weights=require_weights)
    click.echo(render(checks))
    if any(c.state == FAIL for c in checks):
        ctx.exit(1)
