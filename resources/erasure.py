"""Forget a creator: every warehouse row that refers to them, their blobs, their cached data in the
state folder, and a tombstone so that no source or sensor brings them back.

Used by ``creatorlens forget`` (orchestration/cli/forget.py) and the app's
``DELETE /api/creators/{username}``; no Dagster here.

**Which rows.** The tables are not listed by hand (a list rots as stages add tables): the catalog
says which columns hold the creator or their images, and every base table with one is cleared:

* ``creator_id`` → the creator's ids; ``image_id`` → their images' ids; ``image_key`` (and
  ``image_key_a``/``_b``, ``*_image_key``) → their images' keys; ``post_id`` next to ``platform``
  → their posts; ``username`` next to ``platform`` → the creator (``app_users.username`` is an app
  login, without ``platform``, and is not matched);
* ``sha256`` / ``*_sha256`` content hashes (e.g. an escalation cache keyed by image hash) → their
  images' hashes that no other creator's image shares;
* any single-column foreign key to ``creators.creator_id`` or ``images.image_id``/``image_key``,
  whatever the column is called.

Tables are cleared referencing-first (the foreign-key graph, read from ``pg_constraint``), all in
one transaction with the tombstone. A leaf table (no foreign key points at it) with no such column
at all (source rejects and warnings, run failures: records *about* sources and runs) loses the
rows whose text names the creator as a word. Afterwards every text column (text, varchar, jsonb,
text[]) of every table is scanned for the username: what is left (another creator's caption that
mentions them) is reported as a residual mention, not deleted.

**Blobs.** Keys held by the creator's rows in ``*_key`` columns (originals, thumbnails, person
crops) are deleted from the blob folder unless a remaining row still refers to the same key
(content addressing: another creator's repost of the same bytes keeps them).

**State folder.** Parquet stage outputs lose the creator's rows (same key columns); SQLite caches
(the profile API cache) lose rows with their ``username``; raw JSON API dumps that belong to them
are deleted; CSV drop files lose their rows. The embedded PostgreSQL data folder and Dagster's run
history (``dagster_home``: run logs and materialisation previews) are not rewritten here:
:attr:`ErasureReport.not_scrubbed` says so, with the reason.

**Tombstone.** ``creator_tombstones`` holds the platform and the SHA-256 of the normalised
username, never the username; :func:`tombstoned` answers "which of these usernames are
forgotten?" for the sources stage's batch assignment.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import sqlite3
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import psycopg
from psycopg import sql as pgsql
from sqlalchemy.engine import Engine

from creatorlens.fields import PLATFORM, normalise_username
from creatorlens.queries import load_queries
from resources.blobs import LocalBlobs

QUERIES = "erasure.sql"
SKIP_TABLES = frozenset({"creator_tombstones", "schema_migrations"})
_IMAGE_KEY_COLUMNS = frozenset({"image_key", "image_key_a", "image_key_b"})
_NOT_BLOB_KEYS = _IMAGE_KEY_COLUMNS | {"batch_key", "image_key"}
_TEXT_TYPES = frozenset({"text", "character varying", "character", "jsonb", "json"})
# State-folder parts that are not rewritten (see the module docstring), and parts that hold no
# creator data (model weights: gigabytes, not worth a scan).
UNTOUCHED_DIRS = ("pgdata", "dagster_home")
NO_CREATOR_DATA = ("models",)
SCAN_MAX_BYTES = 64 * 1024 * 1024  # larger files are listed as not scanned, not read into memory


def normalise(username: str) -> str:
    """The canonical username (``@Name`` and profile URLs accepted), or ValueError."""
    value = normalise_username(username)
    if value is None:
        raise ValueError(f"not a valid username: {username!r}")
    return value


def username_hash(username: str) -> str:
    """SHA-256 (hex) of the normalised username: what a tombstone stores."""
    return hashlib.sha256(normalise(username).encode()).hexdigest()


def tombstoned(conn: psycopg.Connection, usernames: Iterable[str], platform: str = PLATFORM) -> set[str]:
    """Of ``usernames`` (normalised), those that were forgotten on ``platform``."""
    by_hash = {hashlib.sha256(u.encode()).hexdigest(): u for u in usernames}
    if not by_hash:
        return set()
    rows = conn.execute(load_queries(QUERIES)["tombstoned"],
                        {"platform": platform, "hashes": list(by_hash)}).fetchall()
    return {by_hash[r[0]] for r in rows}


@dataclass
class ErasureReport:
    platform: str
    username_sha256: str
    found: bool = False  # the warehouse held the creator
    rows: dict[str, int] = field(default_factory=dict)  # table → rows deleted
    blobs: list[str] = field(default_factory=list)  # blob keys deleted
    blobs_kept: list[str] = field(default_factory=list)  # the creator's keys another row still uses
    files: dict[str, int] = field(default_factory=dict)  # state-folder file → rows removed (-1: file deleted)
    residual_mentions: dict[str, int] = field(default_factory=dict)  # table.column → rows still naming them
    residual_files: list[str] = field(default_factory=list)  # state-folder files still naming them
    not_scrubbed: list[str] = field(default_factory=list)

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    def as_json(self) -> dict:
        return {"platform": self.platform, "username_sha256": self.username_sha256, "found": self.found,
                "rows": self.rows, "total_rows": self.total_rows, "blobs": len(self.blobs),
                "blobs_kept": len(self.blobs_kept), "files": self.files,
                "residual_mentions": self.residual_mentions, "residual_files": self.residual_files,
                "not_scrubbed": self.not_scrubbed}

    def lines(self) -> list[str]:
        out = [f"tombstone {self.platform}:{self.username_sha256[:16]}… recorded"
               + ("" if self.found else " (no warehouse rows: already forgotten or never ingested)")]
        out += [f"  {table}: {n} rows" for table, n in sorted(self.rows.items())]
        out.append(f"  blobs: {len(self.blobs)} deleted" + (f", {len(self.blobs_kept)} kept (shared with another "
                                                            "creator's image)" if self.blobs_kept else ""))
        out += [f"  file {path}: " + ("deleted" if n < 0 else f"{n} rows removed") for path, n in sorted(self.files.items())]
        out += [f"  still mentioned in {where}: {n} rows (not deleted: another record names them)"
                for where, n in sorted(self.residual_mentions.items())]
        out += [f"  still mentioned in file {path}" for path in self.residual_files]
        out += [f"  not scrubbed: {note}" for note in self.not_scrubbed]
        return out


# ---- the warehouse -------------------------------------------------------------------------------

@dataclass
class _Catalog:
    columns: dict[str, dict[str, tuple[str, str]]]  # table → column → (data_type, udt_name)
    fks: list[tuple[str, list[str], str, list[str]]]

    @classmethod
    def read(cls, conn: psycopg.Connection) -> _Catalog:
        q = load_queries(QUERIES)
        columns: dict[str, dict[str, tuple[str, str]]] = defaultdict(dict)
        for table, column, data_type, udt in conn.execute(q["columns"]).fetchall():
            columns[table][column] = (data_type, udt)
        fks = [(t, list(c), r, list(rc)) for t, c, r, rc in conn.execute(q["foreign_keys"]).fetchall()]
        return cls(dict(columns), fks)

    def subject_columns(self, table: str) -> dict[str, str]:
        """column → subject kind (creator_ids, image_ids, image_keys, post_ids, username, sha256s)."""
        cols = self.columns[table]
        found: dict[str, str] = {}
        for col in cols:
            if col == "creator_id":
                found[col] = "creator_ids"
            elif col == "image_id":
                found[col] = "image_ids"
            elif col in _IMAGE_KEY_COLUMNS or col.endswith("_image_key"):
                found[col] = "image_keys"
            elif col == "post_id" and "platform" in cols:
                found[col] = "post_ids"
            elif col == "username" and "platform" in cols:
                found[col] = "username"
            elif (col == "sha256" or col.endswith("_sha256")) and col != "username_sha256":
                found[col] = "sha256s"
        for src, src_cols, ref, ref_cols in self.fks:
            if src != table or len(src_cols) != 1:
                continue
            kind = {("creators", "creator_id"): "creator_ids", ("images", "image_id"): "image_ids",
                    ("images", "image_key"): "image_keys"}.get((ref, ref_cols[0]))
            if kind:
                found.setdefault(src_cols[0], kind)
        return found

    def delete_order(self, tables: list[str]) -> list[str]:
        """``tables`` with every referencing table before the tables it references."""
        wanted = set(tables)
        before: dict[str, set[str]] = {t: set() for t in tables}  # table → tables that must go first
        for src, _, ref, _ in self.fks:
            if src in wanted and ref in wanted and src != ref:
                before[ref].add(src)
        ordered: list[str] = []
        remaining = sorted(wanted)
        while remaining:
            ready = [t for t in remaining if not (before[t] - set(ordered))]
            if not ready:  # a cycle: take the rest in name order (cascades settle it)
                ordered += remaining
                break
            ordered += ready
            remaining = [t for t in remaining if t not in ready]
        return ordered

    def blob_columns(self, table: str) -> list[str]:
        return [c for c, (dtype, _) in self.columns[table].items()
                if c.endswith("_key") and c not in _NOT_BLOB_KEYS and not c.endswith("_image_key")
                and dtype in ("text", "character varying")]

    def text_columns(self, table: str) -> list[str]:
        return [c for c, (dtype, udt) in self.columns[table].items()
                if dtype in _TEXT_TYPES or (dtype == "ARRAY" and udt in ("_text", "_varchar"))]


def _predicate(table: str, subject: dict[str, str]) -> pgsql.Composable:
    parts = []
    for col, kind in subject.items():
        ident = pgsql.Identifier(col)
        if kind == "username":
            parts.append(pgsql.SQL("(platform = %(platform)s AND {} = %(username)s)").format(ident))
        elif kind == "post_ids":
            parts.append(pgsql.SQL("(platform = %(platform)s AND {} = ANY(%(post_ids)s::text[]))").format(ident))
        elif kind in ("creator_ids", "image_ids"):
            parts.append(pgsql.SQL("{}::bigint = ANY(%({})s::bigint[])").format(ident, pgsql.SQL(kind)))
        else:
            parts.append(pgsql.SQL("{}::text = ANY(%({})s::text[])").format(ident, pgsql.SQL(kind)))
    return pgsql.SQL(" OR ").join(parts)


def word_pattern(username: str) -> str:
    """A PostgreSQL regex matching ``username`` as a whole word (case-insensitive with ~*)."""
    return r"(^|[^a-z0-9_.])" + username.replace(".", r"\.") + r"($|[^a-z0-9_])"


def erase_rows(conn: psycopg.Connection, username: str, platform: str = PLATFORM, *,
               erased_by: str) -> tuple[ErasureReport, set[str]]:
    """Delete the creator's rows everywhere and record the tombstone, in the caller's transaction.

    Returns the report (rows, blobs to delete, residual mentions) and the blob keys no remaining
    row refers to, to delete once the transaction has committed.
    """
    username = normalise(username)
    report = ErasureReport(platform, username_hash(username))
    q = load_queries(QUERIES)
    with conn.transaction():
        conn.execute(q["erasure_lock"])
        catalog = _Catalog.read(conn)
        row = conn.execute(q["subject"], {"platform": platform, "username": username}).fetchone()
        params = {"platform": platform, "username": username, "creator_ids": list(row[0]),
                  "image_ids": list(row[1]), "image_keys": list(row[2]), "post_ids": list(row[3])}
        shared = {r[0] for r in conn.execute(q["shared_sha256"], {"sha256s": list(row[4]),
                                                                 "image_ids": params["image_ids"]}).fetchall()}
        params["sha256s"] = [s for s in row[4] if s not in shared]
        report.found = bool(params["creator_ids"] or params["image_ids"] or params["post_ids"])
        subjects = {t: s for t in catalog.columns if t not in SKIP_TABLES and (s := catalog.subject_columns(t))}
        order = catalog.delete_order(list(subjects))
        blob_cols = {t: catalog.blob_columns(t) for t in catalog.columns}
        candidate_blobs: set[str] = set()
        for table in order:
            pred = _predicate(table, subjects[table])
            for col in blob_cols[table]:
                stmt = pgsql.SQL("SELECT DISTINCT {c} FROM {t} WHERE ({p}) AND {c} IS NOT NULL").format(
                    c=pgsql.Identifier(col), t=pgsql.Identifier(table), p=pred)
                candidate_blobs.update(r[0] for r in conn.execute(stmt, params).fetchall())
            cur = conn.execute(pgsql.SQL("DELETE FROM {} WHERE {}").format(pgsql.Identifier(table), pred), params)
            if cur.rowcount:
                report.rows[table] = cur.rowcount
        still_used: set[str] = set()
        if candidate_blobs:
            for table, cols in blob_cols.items():
                for col in cols:
                    stmt = pgsql.SQL("SELECT DISTINCT {c} FROM {t} WHERE {c} = ANY(%(keys)s::text[])").format(
                        c=pgsql.Identifier(col), t=pgsql.Identifier(table))
                    still_used.update(r[0] for r in conn.execute(stmt, {"keys": sorted(candidate_blobs)}).fetchall())
        to_delete = candidate_blobs - still_used
        report.blobs_kept = sorted(candidate_blobs & still_used)
        pattern = word_pattern(username)
        # Leaf tables that hold no creator key at all (source rejects and warnings, run failures): a
        # row that names them is about them, and goes too. Tables other rows refer to (tags, app
        # users, taxonomies) are definitions, not records about anyone: left alone.
        referenced = {ref for _, _, ref, _ in catalog.fks}
        for table in sorted(catalog.columns):
            cols = catalog.text_columns(table)
            if table in SKIP_TABLES or table in subjects or table in referenced or not cols:
                continue
            names = pgsql.SQL(" OR ").join(pgsql.SQL("{}::text ~* %(pattern)s").format(pgsql.Identifier(c))
                                           for c in cols)
            cur = conn.execute(pgsql.SQL("DELETE FROM {} WHERE {}").format(pgsql.Identifier(table), names),
                               {"pattern": pattern})
            if cur.rowcount:
                report.rows[table] = report.rows.get(table, 0) + cur.rowcount
        for table in sorted(catalog.columns):
            if table in SKIP_TABLES:
                continue
            for col in catalog.text_columns(table):
                stmt = pgsql.SQL("SELECT count(*) FROM {t} WHERE {c}::text ~* %(pattern)s").format(
                    t=pgsql.Identifier(table), c=pgsql.Identifier(col))
                n = conn.execute(stmt, {"pattern": pattern}).fetchone()[0]
                if n:
                    report.residual_mentions[f"{table}.{col}"] = n
        conn.execute(q["tombstone"], {"platform": platform, "hash": report.username_sha256, "erased_by": erased_by,
                                      "removed": json.dumps({"rows": report.rows, "blobs": len(to_delete)})})
    report.blobs = sorted(to_delete)
    return report, to_delete


# ---- the state folder ------------------------------------------------------------------------------

def _is_under(path: Path, roots: Iterable[Path]) -> bool:
    return any(root == path or root in path.parents for root in roots)


def _scrub_parquet(path: Path, username: str, platform: str, keys: dict[str, set]) -> int:
    df = pd.read_parquet(path)
    drop = pd.Series(False, index=df.index)
    cols = set(df.columns)
    same_platform = df["platform"].astype(str) == platform if "platform" in cols else pd.Series(True, index=df.index)
    for col in df.columns:
        series = df[col]
        if col == "username":
            drop |= same_platform & (series.astype(str).str.lower() == username)
        elif col in _IMAGE_KEY_COLUMNS or str(col).endswith("_image_key"):
            drop |= series.astype(str).isin(keys["image_keys"])
        elif col == "image_id":
            drop |= pd.to_numeric(series, errors="coerce").isin(keys["image_ids"])
        elif col == "creator_id":
            drop |= pd.to_numeric(series, errors="coerce").isin(keys["creator_ids"])
        elif col == "post_id" and "platform" in cols:
            drop |= same_platform & series.astype(str).isin(keys["post_ids"])
    n = int(drop.sum())
    if n:
        tmp = path.with_suffix(f".tmp-{os.getpid()}")
        df[~drop].reset_index(drop=True).to_parquet(tmp, index=False)
        os.replace(tmp, path)
    return n


def _scrub_sqlite(path: Path, username: str, platform: str) -> int:
    removed = 0
    db = sqlite3.connect(path, timeout=60)
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            cols = {r[1] for r in db.execute(f'PRAGMA table_info("{table}")')}  # noqa: S608 - catalog names
            if "username" not in cols:
                continue
            where = "lower(username) = ?" + (" AND platform = ?" if "platform" in cols else "")
            args = (username, platform) if "platform" in cols else (username,)
            removed += db.execute(f'DELETE FROM "{table}" WHERE {where}', args).rowcount  # noqa: S608
        db.commit()
    finally:
        db.close()
    return removed


def _names_user(obj: object, username: str) -> bool:
    """A JSON document whose ``username`` (any depth) is the creator's."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "username" and isinstance(v, str) and normalise_username(v) == username:
                return True
            if _names_user(v, username):
                return True
    elif isinstance(obj, list):
        return any(_names_user(v, username) for v in obj)
    return False


def _file_user(name: str) -> str | None:
    """The username a dump's file name names, as the sources read it: the first ``(...)``
    (``web_profile_info(name)_2024-05-01.json``), or instaloader's ``<name>_<id>.json``."""
    if found := re.search(r"\(([^()]+)\)", name):
        return normalise_username(found.group(1))
    if found := re.match(r"^([A-Za-z0-9._]+)_\d+\.json", name):
        return normalise_username(found.group(1))
    return None


def _scrub_csv(path: Path, username: str) -> int:
    raw = path.read_bytes()
    for encoding in ("utf-8-sig", "utf-8"):
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        return 0  # left as is; the residual scan reports it if it names them
    sample = text[:4096]
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    rows = list(csv.reader(io.StringIO(text), dialect))
    kept = [r for r in rows if not any(normalise_username(cell) == username for cell in r)]
    if len(kept) == len(rows):
        return 0
    out = io.StringIO()
    csv.writer(out, dialect).writerows(kept)
    tmp = path.with_suffix(f".tmp-{os.getpid()}")
    tmp.write_text(out.getvalue(), encoding="utf-8")
    os.replace(tmp, path)
    return len(rows) - len(kept)


def scrub_state(state_dir: Path, blob_root: Path, parquet_root: Path, username: str, platform: str,
                keys: dict[str, set], blob_keys: Iterable[str], report: ErasureReport) -> None:
    """Delete the creator's blobs and cached data under ``state_dir`` (after the warehouse committed)."""
    username = normalise(username)
    state_dir = Path(state_dir)
    blobs = LocalBlobs(blob_root)
    for key in blob_keys:
        try:
            blobs.path(key).unlink(missing_ok=True)
        except ValueError:
            report.not_scrubbed.append(f"blob key {key!r} outside the blob folder")
    untouched = [state_dir / d for d in (*UNTOUCHED_DIRS, *NO_CREATOR_DATA)]
    blob_root, parquet_root = Path(blob_root).resolve(), Path(parquet_root).resolve()
    if not state_dir.is_dir():
        return
    for path in sorted(p for p in state_dir.rglob("*") if p.is_file()):
        if _is_under(path, untouched) or _is_under(path.resolve(), [blob_root]) or ".tmp-" in path.name:
            continue
        rel = str(path.relative_to(state_dir))
        suffix = path.suffix.lower()
        try:
            if suffix == ".parquet":
                n = _scrub_parquet(path, username, platform, keys)
            elif suffix in (".sqlite", ".sqlite3", ".db"):
                n = _scrub_sqlite(path, username, platform)
            elif suffix == ".json":
                try:
                    doc = json.loads(path.read_text(encoding="utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError):
                    doc = None
                if _file_user(path.name) == username or _names_user(doc, username):
                    path.unlink()
                    n = -1
                else:
                    n = 0
            elif suffix == ".csv":
                n = _scrub_csv(path, username)
            else:
                n = 0
        except (OSError, ValueError, sqlite3.Error) as exc:
            report.not_scrubbed.append(f"{rel}: {type(exc).__name__}: {exc}")
            continue
        if n:
            report.files[rel] = n
    needle = username.encode()
    for path in sorted(p for p in state_dir.rglob("*") if p.is_file()):
        if _is_under(path, untouched) or path.suffix.lower() == ".parquet":
            continue
        try:
            if path.stat().st_size > SCAN_MAX_BYTES:
                report.not_scrubbed.append(f"{path.relative_to(state_dir)}: larger than {SCAN_MAX_BYTES >> 20} MiB, "
                                           "not scanned")
            elif needle in path.read_bytes().lower():
                report.residual_files.append(str(path.relative_to(state_dir)))
        except OSError:
            continue
    for part in UNTOUCHED_DIRS:
        if (state_dir / part).exists():
            why = ("the embedded PostgreSQL's files (deleted rows are gone from every query; VACUUM reclaims them)"
                   if part == "pgdata" else
                   "Dagster's run history (run logs and materialisation previews of past runs may name the creator)")
            report.not_scrubbed.append(f"{part}: {why}")


def forget(engine: Engine, username: str, *, state_dir: Path, blob_root: Path, parquet_root: Path,
           erased_by: str, platform: str = PLATFORM) -> ErasureReport:
    """The whole erasure: warehouse rows + tombstone (one transaction, committed), then blobs and state files."""
    username = normalise(username)
    with engine.begin() as sa_conn:
        conn = sa_conn.connection.driver_connection
        row = conn.execute(load_queries(QUERIES)["subject"], {"platform": platform, "username": username}).fetchone()
        keys = {"creator_ids": set(row[0]), "image_ids": set(row[1]), "image_keys": set(row[2]),
                "post_ids": set(row[3])}
        report, blob_keys = erase_rows(conn, username, platform, erased_by=erased_by)
    # Committed: the rows are gone for good before any file is.
    scrub_state(state_dir, blob_root, parquet_root, username, platform, keys, blob_keys, report)
    return report
