"""Pure-Python parsers for raw creator data (CSV exports and Instagram JSON dumps).

Every parser returns normalised records together with a list of :class:`Reject` entries:
any non-blank row, file or post that is skipped is recorded with where and why, never
dropped silently. What is kept with a caveat (a value that could not be parsed, a known CSV
field with no column, a fallback encoding, a post credited to an owner other than the file's
user, an unknown shape's list of known shapes) is a :class:`SourceWarning`; the snapshot
carries both. Nothing a file holds raises; nothing here touches Dagster, a database or the
network.

CSV: delimiter (comma, semicolon, tab) and encoding (UTF-8, UTF-8 BOM, UTF-16, Windows-1252)
are detected; headers are matched after normalising case, spaces, underscores, punctuation and
line breaks (``DEFAULT_HEADER_MAP`` + ``EXPORT_HEADER_ALIASES``, overridable per field through
the ``csv_header_map`` setting). JSON: the shapes in ``USER_SHAPES`` / ``ITEM_SHAPES``
(``KNOWN_SHAPES``), ``*.json`` and instaloader's ``*.json.xz``.

Reject ``record`` labels, unique per ``(source, record)`` (the ``source_rejects`` key):

* CSV: ``"line N"`` - physical line where the record starts (1-based, header is line 1).
* CSV, whole file (undecodable, no header, no username column): the file name.
* JSON, whole document (bad file name, invalid JSON, unrecognised shape): the file name.
* JSON, profile part of a document (e.g. unparseable follower count): ``"profile"``.
* JSON, malformed post list of a document: ``"posts"``.
* JSON, one post: ``"record N"`` - 1-based position in the document's post list(s).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import lzma
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from creatorlens.fields import PLATFORM, clean_bio, normalise_username, one_line, parse_count

__all__ = [
    "DEFAULT_HEADER_MAP",
    "EXPORT_HEADER_ALIASES",
    "CreatorRecord",
    "CsvRead",
    "PostRecord",
    "Reject",
    "SourceSnapshot",
    "SourceWarning",
    "decode_csv_bytes",
    "load_sources",
    "normalise_documents",
    "normalise_dumps",
    "parse_dump_filename",
    "parse_header_map",
    "read_csv_export",
    "read_csv_file",
    "read_json_dumps",
    "read_stored_responses",
    "sniff_delimiter",
]


@dataclass(frozen=True)
class Reject:
    """One refused row, file or post: where it came from and why it was refused."""

    source: str
    record: str
    reason: str


@dataclass(frozen=True)
class SourceWarning:
    """Something a source said that was read with a caveat: the row or file is kept, the note is
    recorded (a value that could not be parsed, a known field with no column, a fallback encoding).
    """

    source: str
    record: str
    message: str


@dataclass
class CreatorRecord:
    """A normalised creator profile."""

    username: str
    platform: str = PLATFORM
    full_name: str | None = None
    followers: int | None = None
    category: str | None = None
    bio: str | None = None
    country: str | None = None
    is_business: bool | None = None
    is_verified: bool | None = None
    sources: tuple[str, ...] = ()
    following: int | None = None
    external_url: str | None = None
    is_private: bool | None = None
    # The profile's own post total as the source states it (not the posts read). Left out of
    # record equality: it moves with every post and says nothing about who the creator is.
    post_count: int | None = field(default=None, compare=False)


@dataclass
class PostRecord:
    """A normalised post (Instagram media)."""

    username: str
    post_id: str
    platform: str = PLATFORM
    shortcode: str | None = None
    taken_at: datetime | None = None
    caption: str | None = None
    likes: int = 0
    comments: int = 0
    media_url: str | None = None
    is_video: bool = False
    source: str | None = None
    video_url: str | None = None
    video_duration: float | None = None
    view_count: int | None = None
    play_count: int | None = None
    # Every child of a carousel (carousel_media / edge_sidecar_to_children), in order; empty for
    # a single image or video, whose one image is ``media_url`` (a video's cover image).
    images: tuple[PostImage, ...] = ()


@dataclass(frozen=True)
class PostImage:
    """One image of a carousel post, with its 1-based position in the carousel."""

    position: int
    url: str | None
    is_video: bool = False
    video_url: str | None = None
    media_id: str | None = None


@dataclass
class SourceSnapshot:
    """Everything read from all sources: creators by username, posts, and rejects."""

    creators: dict[str, CreatorRecord] = field(default_factory=dict)
    posts: list[PostRecord] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    # Kept rows/files read with a caveat (a value that could not be parsed, a known CSV field
    # with no column, a fallback encoding, a post whose owner is not the file's user).
    warnings: list[SourceWarning] = field(default_factory=list)


DEFAULT_HEADER_MAP: dict[str, tuple[str, ...]] = {
    "username": ("username", "handle", "instagram", "account", "user", "instagram username"),
    "full_name": ("name", "full name", "full_name"),
    "followers": ("followers", "followers count", "follower count"),
    "category": ("genre", "category", "topics", "topic"),
    "bio": ("details", "bio", "biography", "description"),
    "country": ("country", "location"),
}

# Creator fields that a later source may fill when an earlier one left them empty.
_MERGEABLE_CREATOR_FIELDS = (
    "full_name",
    "followers",
    "category",
    "bio",
    "country",
    "is_business",
    "is_verified",
    "following",
    "external_url",
    "is_private",
    "post_count",
)
# Post fields that a later occurrence of the same post may fill when still empty.
_MERGEABLE_POST_FIELDS = (
    "shortcode",
    "taken_at",
    "caption",
    "media_url",
    "video_url",
    "video_duration",
    "view_count",
    "play_count",
)

_URL_SCHEME_RE = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)
_OWNER_SUFFIXED_ID_RE = re.compile(r"^(\d+)_\d+$")
_FILENAME_USER_RE = re.compile(r"\(([^)]*)\)")
_SURROGATE_RE = re.compile("[\udc80-\udcff]")


# --------------------------------------------------------------------------- primitives


# --------------------------------------------------------------------------- CSV

# Aliases of the common exports beyond DEFAULT_HEADER_MAP (compared after _normalise_header, so
# "follower_count", "Followers\nCount" and "FOLLOWERS-COUNT" all read as "follower count").
EXPORT_HEADER_ALIASES: dict[str, tuple[str, ...]] = {
    "username": (
        "channel info",
        "instagram name",
        "instagram handle",
        "instagram account",
        "instagram user",
        "ig username",
        "influencer",
        "profile url",
        "profile link",
        "profile",
        "instagram url",
        "instagram link",
        "url",
    ),
    "full_name": ("creator name", "display name", "influencer name"),
    "followers": ("subscribers", "follower count", "followers count", "instagram followers", "subscriber count"),
    "category": ("categories", "niche"),
    "bio": ("about",),
    "country": ("audience country", "audience country mostly", "top audience country", "top country"),
}

CSV_DELIMITERS = (",", ";", "\t")
_TEXT_PLACEHOLDERS = frozenset({"nan", "n/a", "null"})
_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab"}
_HEADER_PUNCT_RE = re.compile(r"[\W_]+")


@dataclass
class CsvRead:
    """One CSV file as read: records, refused rows (or one file-level reject), warnings, and how
    it was decoded and split."""

    records: list[CreatorRecord] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    warnings: list[SourceWarning] = field(default_factory=list)
    encoding: str | None = None
    delimiter: str | None = None
    columns: dict[str, str] = field(default_factory=dict)


class CsvFileError(ValueError):
    """The file cannot be mapped at all (no header, no username column, undecodable)."""


def _normalise_header(cell: str) -> str:
    """Header cell as compared with the header map: no BOM/quotes, punctuation, underscores and
    line breaks as single spaces, casefolded."""
    text = cell.replace("\ufeff", "").strip().strip("\"'").strip().casefold()
    return " ".join(_HEADER_PUNCT_RE.sub(" ", text).split())


def _resolve_columns(
    headers: Sequence[str], header_map: Mapping[str, Sequence[str]]
) -> dict[str, int]:
    """Map each field to the index of its column; alias order decides between candidates and
    the first of several equal headers wins."""
    normalised = [_normalise_header(h) for h in headers]
    taken: set[int] = set()
    columns: dict[str, int] = {}
    for field_name, aliases in header_map.items():
        for alias in aliases:
            wanted = _normalise_header(alias)
            index = next(
                (i for i, h in enumerate(normalised) if h == wanted and i not in taken), None
            )
            if index is not None:
                columns[field_name] = index
                taken.add(index)
                break
    return columns


def _effective_header_map(
    header_map: Mapping[str, Sequence[str]] | None,
) -> dict[str, tuple[str, ...]]:
    """Defaults plus the export aliases, with any field given in ``header_map`` replacing that
    field's aliases."""
    merged = {name: aliases + EXPORT_HEADER_ALIASES.get(name, ()) for name, aliases in DEFAULT_HEADER_MAP.items()}
    if header_map:
        unknown = sorted(set(header_map) - set(DEFAULT_HEADER_MAP))
        if unknown:
            raise ValueError(
                f"unknown field(s) in header map: {unknown}; known: {sorted(DEFAULT_HEADER_MAP)}"
            )
        for field_name, aliases in header_map.items():
            if isinstance(aliases, str):
                aliases = (aliases,)
            merged[field_name] = tuple(aliases)
    return merged


def parse_header_map(raw: str | Mapping[str, Any] | None) -> dict[str, tuple[str, ...]] | None:
    """The ``csv_header_map`` setting (JSON ``{"field": ["header", ...]}`` or ``{"field": "header"}``)
    as a header map; ``ValueError`` naming the problem when it is not one."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    value = json.loads(raw) if isinstance(raw, str) else raw
    if not isinstance(value, Mapping):
        raise ValueError(f"CSV header map must be a JSON object, got {type(value).__name__}")  # noqa: TRY004 - a configuration error, like the others here
    result: dict[str, tuple[str, ...]] = {}
    for name, aliases in value.items():
        if isinstance(aliases, str):
            aliases = [aliases]
        if not isinstance(aliases, list | tuple) or not all(isinstance(a, str) for a in aliases):
            raise ValueError(f"CSV header map: {name!r} must map to a header or a list of headers")
        result[str(name)] = tuple(aliases)
    _effective_header_map(result)  # unknown fields raise here
    return result


def _looks_utf16(data: bytes) -> str | None:
    """``utf-16-le``/``-be`` for BOM-less UTF-16 text (NULs on every other byte), else ``None``."""
    sample = data[:4000]
    if len(sample) < 4 or len(sample) % 2:
        return None
    even, odd = sample[0::2], sample[1::2]
    if odd.count(0) > 0.4 * len(odd) and even.count(0) < 0.1 * len(even):
        return "utf-16-le"
    if even.count(0) > 0.4 * len(even) and odd.count(0) < 0.1 * len(odd):
        return "utf-16-be"
    return None


def decode_csv_bytes(data: bytes) -> tuple[str, str]:
    """``(text, encoding)`` of a CSV file: UTF-8 (with or without BOM), UTF-16 (BOM or not), else
    Windows-1252. Raises :class:`CsvFileError` when the bytes are not text.

    A file that is valid UTF-8 except for a few bytes (mixed encodings) stays UTF-8 with those
    bytes kept as lone surrogates, so only the rows containing them are refused; a file with no
    valid multi-byte UTF-8 sequence at all is read as Windows-1252 instead.
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError as exc:
            raise CsvFileError(f"undecodable: UTF-16 byte order mark but invalid UTF-16 ({exc.reason})") from exc
    utf16 = _looks_utf16(data)
    if utf16:
        try:
            return data.decode(utf16), utf16
        except UnicodeDecodeError:
            pass
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="surrogateescape"), "utf-8-sig"
    if b"\x00" in data:
        raise CsvFileError("undecodable: binary content (NUL bytes), not a text file")
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    loose = data.decode("utf-8", errors="surrogateescape")
    if any(ord(ch) > 0x7F and not 0xDC80 <= ord(ch) <= 0xDCFF for ch in loose):
        return loose, "utf-8"  # mostly UTF-8: only the bad rows are refused
    try:
        return data.decode("cp1252"), "windows-1252"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


def _split_lines(text: str) -> list[str]:
    return io.StringIO(text, newline="").readlines()


def sniff_delimiter(text: str) -> str:
    """The delimiter (comma, semicolon, tab) that splits the first record into most cells."""
    lines = _split_lines(text)
    best, best_cells = ",", 0
    for delimiter in CSV_DELIMITERS:
        reader = csv.reader(lines, delimiter=delimiter)
        try:
            first = next((row for row in reader if not _is_blank(row)), [])
        except csv.Error:
            continue
        if len(first) > best_cells:
            best, best_cells = delimiter, len(first)
    return best


def _csv_records(text: str, delimiter: str = ",") -> Iterator[tuple[int, list[str] | csv.Error, bool]]:
    """Yield ``(start_line, row, unterminated)`` per CSV record; parse errors come in place.

    ``unterminated`` is true when the record is the last one and ends inside a quoted field
    (an unclosed quote that silently swallowed the rest of the file).
    """
    lines = _split_lines(text)
    reader = csv.reader(lines, delimiter=delimiter)
    end_line = 0
    while True:
        start_line = end_line + 1
        try:
            row: list[str] | csv.Error = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            row = exc
        end_line = reader.line_num
        unterminated = (
            end_line == len(lines)
            and not isinstance(row, csv.Error)
            and _ends_inside_quotes("".join(lines[start_line - 1 : end_line]), delimiter)
        )
        yield start_line, row, unterminated


def _ends_inside_quotes(raw: str, delimiter: str = ",") -> bool:
    """True when ``raw`` (one record's text) ends inside an open quoted field."""
    if '"' not in raw:
        return False
    try:
        list(csv.reader([raw], strict=True, delimiter=delimiter))
    except csv.Error as exc:
        return "unexpected end of data" in str(exc)
    return False


def _is_blank(row: Sequence[str]) -> bool:
    """True for a row with no cells or only empty/whitespace cells."""
    return all(not cell.strip() for cell in row)


def read_csv_export(
    path: Path | str, header_map: Mapping[str, Sequence[str]] | None = None
) -> tuple[list[CreatorRecord], list[Reject]]:
    """Read a StarNgage-like influencer CSV export into creator records and rejects (strict).

    Raises ``ValueError`` when the file has no recognisable username column (or an unknown
    field in ``header_map``); every bad row, an unparseable follower count included, is returned
    as a :class:`Reject` instead. Invalid UTF-8 only rejects the rows that contain it.
    The pipeline reads CSVs with :func:`read_csv_file`, which never raises for a file and keeps
    a row whose follower count cannot be parsed.
    """
    result = _read_csv(path, header_map, strict=True)
    return result.records, result.rejects


def read_csv_file(path: Path | str, header_map: Mapping[str, Sequence[str]] | None = None) -> CsvRead:
    """Read one CSV export for the pipeline: never raises for the file's content.

    A file that cannot be mapped (undecodable, no header, no username column) is one file-level
    :class:`Reject` (``record`` = the file name); a value that cannot be parsed (followers) keeps
    the creator with that field empty and a :class:`SourceWarning`; a known field with no
    column, a repeated column name and a fallback encoding are warnings too.
    """
    return _read_csv(path, header_map, strict=False)


def _file_reject(source: str, reason: str) -> Reject:
    return Reject(source, Path(source).name or source, reason)


def _read_csv(path: Path | str, header_map: Mapping[str, Sequence[str]] | None, *, strict: bool) -> CsvRead:
    source = str(path)
    fields = _effective_header_map(header_map)
    out = CsvRead()
    try:
        data = Path(path).read_bytes()
        text, out.encoding = decode_csv_bytes(data)
    except (OSError, CsvFileError) as exc:
        if strict:
            raise ValueError(f"{source}: {exc}") from exc
        out.rejects.append(_file_reject(source, f"unreadable file: {exc}" if isinstance(exc, OSError) else str(exc)))
        return out
    if out.encoding not in ("utf-8", "utf-8-sig"):
        out.warnings.append(SourceWarning(source, "file", f"not UTF-8: decoded as {out.encoding}"))
    out.delimiter = sniff_delimiter(text)
    if out.delimiter != ",":
        out.warnings.append(SourceWarning(source, "file", f"delimiter: {_DELIMITER_NAMES[out.delimiter]}"))

    first_seen: dict[str, int] = {}
    headers: list[str] | None = None
    columns: dict[str, int] = {}

    for line, row, unterminated in _csv_records(text, out.delimiter):
        where = f"line {line}"
        if isinstance(row, csv.Error):
            out.rejects.append(Reject(source, where, f"CSV parse error: {row}"))
            continue
        if unterminated:
            out.rejects.append(Reject(source, where, "unterminated quoted field (runs to end of file)"))
            continue
        if _is_blank(row):
            continue
        if headers is None:
            headers = row
            columns = _resolve_columns(headers, fields)
            if "username" not in columns:
                reason = (
                    f"no username column; headers: {headers!r}; "
                    f"accepted username headers: {list(fields['username'])!r}"
                )
                if strict:
                    raise ValueError(f"{source}: {reason}")
                out.rejects = [_file_reject(source, reason)]  # nothing else of the file is read
                return out
            out.columns = {name: headers[index] for name, index in columns.items()}
            out.warnings.extend(_header_warnings(source, where, headers, columns, fields))
            continue
        if len(row) != len(headers):
            out.rejects.append(
                Reject(source, where, f"unexpected column count {len(row)} (header has {len(headers)})")
            )
            continue
        if any(_SURROGATE_RE.search(cell) for cell in row):
            out.rejects.append(Reject(source, where, "invalid UTF-8 bytes in row"))
            continue
        result = _creator_from_row(row, columns, source, strict=strict)
        if isinstance(result, str):
            out.rejects.append(Reject(source, where, result))
            continue
        creator, problems = result
        if creator.username in first_seen:
            out.rejects.append(
                Reject(
                    source,
                    where,
                    f"duplicate username {creator.username!r} "
                    f"(first seen on line {first_seen[creator.username]})",
                )
            )
            continue
        first_seen[creator.username] = line
        out.records.append(creator)
        out.warnings.extend(SourceWarning(source, where, p) for p in problems)

    if headers is None:
        reason = "no username column; headers: []; the file has no header row"
        if strict:
            raise ValueError(f"{source}: {reason}")
        out.rejects.append(_file_reject(source, reason))
    return out


def _header_warnings(
    source: str,
    where: str,
    headers: Sequence[str],
    columns: Mapping[str, int],
    fields: Mapping[str, Sequence[str]],
) -> list[SourceWarning]:
    """A warning per known field with no column, and per column name repeated (first wins)."""
    warnings = [
        SourceWarning(source, where, f"no column for {name} (accepted headers: {list(fields[name])!r})")
        for name in fields
        if name not in columns
    ]
    by_name: dict[str, list[int]] = {}
    for index, header in enumerate(headers):
        key = _normalise_header(header)
        if key:
            by_name.setdefault(key, []).append(index)
    used = {index: name for name, index in columns.items()}
    for indexes in by_name.values():
        if len(indexes) > 1:
            first = indexes[0]
            role = f"used for {used[first]}" if first in used else "not mapped"
            warnings.append(
                SourceWarning(
                    source,
                    where,
                    f"duplicate column {one_line(headers[first])!r} at columns "
                    f"{[i + 1 for i in indexes]}: the first ({first + 1}, {role}) wins, the rest are ignored",
                )
            )
    return warnings


def _creator_from_row(
    row: Sequence[str], columns: Mapping[str, int], source: str, *, strict: bool = True
) -> tuple[CreatorRecord, list[str]] | str:
    """Build a creator from one CSV row (with the problems of kept values), or return the
    reason it is refused."""

    def cell(field_name: str) -> str | None:
        index = columns.get(field_name)
        if index is None:
            return None
        value = row[index]
        # pandas-written exports spell a missing text value "NaN"
        return None if value.strip().casefold() in _TEXT_PLACEHOLDERS else value

    raw_username = (cell("username") or "").strip()
    if not raw_username:
        return "missing username"
    username = normalise_username(raw_username)
    if username is None:
        return f"invalid username {raw_username!r}"
    problems: list[str] = []
    raw_followers = cell("followers")
    try:
        followers = parse_count(raw_followers)
    except ValueError:
        reason = f"unparseable followers {(raw_followers or '').strip()!r}"
        if strict:
            return reason
        problems.append(f"{reason}: creator kept with followers empty")
        followers = None
    creator = CreatorRecord(
        username=username,
        full_name=one_line(cell("full_name")),
        followers=followers,
        category=one_line(cell("category")),
        bio=clean_bio(cell("bio")),
        country=one_line(cell("country")),
        sources=(source,),
    )
    return creator, problems


# --------------------------------------------------------------------------- JSON


class SourceRead(tuple):
    """``(creators, posts, rejects)`` of one read, unpacking as the plain triple it replaces, with
    the read's :class:`SourceWarning` entries as ``.warnings``."""

    warnings: list[SourceWarning]

    def __new__(  # noqa: PYI034 - a tuple subclass built from its three parts
        cls, creators: Any, posts: Any, rejects: Any, warnings: Iterable[SourceWarning] = ()
    ) -> SourceRead:
        self = super().__new__(cls, (creators, posts, rejects))
        self.warnings = list(warnings)
        return self


JSON_SUFFIXES = (".json", ".json.xz")
_INSTALOADER_NAME_RE = re.compile(r"^([A-Za-z0-9._]{1,30})_(\d+)\.json(?:\.xz)?$", re.IGNORECASE)
_TIMELINE_CONNECTION = "xdt_api__v1__feed__user_timeline_graphql_connection"


def parse_dump_filename(name: str) -> str | None:
    """Username from the first ``(...)`` of a dump's file name, normalised; else ``None``."""
    match = _FILENAME_USER_RE.search(Path(name).name)
    return normalise_username(match.group(1)) if match else None


def instaloader_filename_user(name: str) -> str | None:
    """Username of instaloader's profile file naming ``<username>_<profile id>.json[.xz]``."""
    match = _INSTALOADER_NAME_RE.match(Path(name).name)
    return normalise_username(match.group(1)) if match else None


def _is_instaloader(doc: Any) -> bool:
    return isinstance(doc, dict) and isinstance(doc.get("node"), dict) and isinstance(doc.get("instaloader"), dict)


def _dig(obj: Any, *keys: str | int) -> Any:
    """Follow dict keys / list indexes; ``None`` as soon as a step is missing or mistyped."""
    for key in keys:
        if isinstance(key, int):
            if not isinstance(obj, list) or not -len(obj) <= key < len(obj):
                return None
            obj = obj[key]
        else:
            if not isinstance(obj, dict):
                return None
            obj = obj.get(key)
    return obj


def _first_present(*values: Any) -> Any:
    """The first value that is not ``None``."""
    return next((v for v in values if v is not None), None)


def _as_dict(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def _as_list(value: Any) -> list[Any] | None:
    return value if isinstance(value, list) else None


def _instaloader_part(doc: Any, kind: str) -> Any:
    """The ``node`` of an instaloader document (``{"node": ..., "instaloader": {...}}``) of ``kind``."""
    if not isinstance(doc, dict) or not isinstance(doc.get("node"), dict):
        return None
    node = doc["node"]
    node_type = _dig(doc, "instaloader", "node_type")
    if node_type is None:  # a bare {"node": {...}}: a post has a shortcode, a profile a username
        node_type = "Post" if ("shortcode" in node or "code" in node) else ("Profile" if "username" in node else None)
    if kind == "user":
        return node if node_type == "Profile" else None
    return [node] if node_type in ("Post", "StoryItem") else None


# The document shapes understood, by where the profile (``user``) and the post list (``items``)
# sit. The first user shape and the first items shape that match are used (both may).
USER_SHAPES: tuple[tuple[str, Any], ...] = (
    ("data.user (web_profile_info)", lambda d: _as_dict(_dig(d, "data", "user"))),
    ("user", lambda d: _as_dict(_dig(d, "user"))),
    ("graphql.user (?__a=1)", lambda d: _as_dict(_dig(d, "graphql", "user"))),
    ("entry_data.ProfilePage[0].graphql.user", lambda d: _as_dict(_dig(d, "entry_data", "ProfilePage", 0, "graphql", "user"))),
    ("instaloader Profile {node, instaloader}", lambda d: _instaloader_part(d, "user")),
)
ITEM_SHAPES: tuple[tuple[str, Any], ...] = (
    (f"data.{_TIMELINE_CONNECTION}.edges[].node", lambda d: _as_list(_dig(d, "data", _TIMELINE_CONNECTION, "edges"))),
    ("graphql.shortcode_media", lambda d: [m] if (m := _as_dict(_dig(d, "graphql", "shortcode_media"))) else None),
    ("data.shortcode_media", lambda d: [m] if (m := _as_dict(_dig(d, "data", "shortcode_media"))) else None),
    ("data.xdt_shortcode_media", lambda d: [m] if (m := _as_dict(_dig(d, "data", "xdt_shortcode_media"))) else None),
    ("data.data.items[]", lambda d: _as_list(_dig(d, "data", "data", "items"))),
    ("data.items[]", lambda d: _as_list(_dig(d, "data", "items"))),
    ("items[] (v1 feed; {media} / {media_or_ad} wrappers)", lambda d: _as_list(_dig(d, "items"))),
    ("feed_items[].media_or_ad (v1 timeline)", lambda d: _as_list(_dig(d, "feed_items"))),
    ("instaloader Post {node, instaloader}", lambda d: _instaloader_part(d, "items")),
)
KNOWN_SHAPES: tuple[str, ...] = tuple(name for name, _ in (*USER_SHAPES, *ITEM_SHAPES))


def _document_parts(doc: Any) -> tuple[dict[str, Any] | None, list[Any] | None]:
    """Split a document into its ``user`` object and/or its ``items`` list (see the shapes)."""
    if not isinstance(doc, dict):
        return None, None
    user = next((u for _, shape in USER_SHAPES if (u := shape(doc)) is not None), None)
    items = next((i for _, shape in ITEM_SHAPES if (i := shape(doc)) is not None), None)
    return user, items


def _count_or_none(raw: Any, name: str = "count", problems: list[str] | None = None) -> int | None:
    """A count that does not decide whether the record is kept: unparseable -> ``None``, noted."""
    try:
        return parse_count(raw)
    except ValueError:
        if problems is not None:
            problems.append(f"unparseable {name} {raw!r}: kept empty")
        return None


def _profile_from_user(
    username: str, user: Mapping[str, Any], problems: list[str] | None = None
) -> CreatorRecord | str:
    """Creator fields from an Instagram user object, or the reason they are refused."""
    raw_followers = _first_present(
        _dig(user, "edge_followed_by", "count"), user.get("follower_count")
    )
    try:
        followers = parse_count(raw_followers)
    except ValueError:
        return f"unparseable followers {raw_followers!r}"

    def text(*keys: str) -> str | None:
        for key in keys:
            value = user.get(key)
            if isinstance(value, str) and value.strip():
                return one_line(value)
        return None

    def flag(*keys: str) -> bool | None:
        return next((v for k in keys if isinstance(v := user.get(k), bool)), None)

    biography = user.get("biography")
    return CreatorRecord(
        username=username,
        full_name=text("full_name"),
        followers=followers,
        category=text("category_name", "category", "business_category_name"),
        bio=clean_bio(biography) if isinstance(biography, str) else None,
        is_business=flag("is_business_account", "is_business"),
        is_verified=flag("is_verified"),
        following=_count_or_none(
            _first_present(_dig(user, "edge_follow", "count"), user.get("following_count")), "following", problems
        ),
        external_url=text("external_url"),
        is_private=flag("is_private"),
        post_count=_count_or_none(
            _first_present(_dig(user, "edge_owner_to_timeline_media", "count"), user.get("media_count")),
            "post count",
            problems,
        ),
    )


def _post_id(raw: Any) -> str | None:
    """Canonical media id; the owner suffix of v1 ids (``"<pk>_<owner>"``) is dropped."""
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        return None
    value = str(raw).strip()
    owner_suffixed = _OWNER_SUFFIXED_ID_RE.match(value)
    return owner_suffixed.group(1) if owner_suffixed else (value or None)


def _timestamp(raw: Any) -> datetime | None:
    """Timezone-aware UTC datetime from unix seconds; raises ``ValueError`` when invalid."""
    if raw is None:
        return None
    if isinstance(raw, bool):
        raise ValueError(raw)
    try:
        seconds = float(raw) if isinstance(raw, str) else raw
        return datetime.fromtimestamp(seconds, tz=timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError) as exc:
        raise ValueError(raw) from exc


def _media_location(raw: Any, source: str) -> str | None:
    """Keep URLs and absolute paths; resolve a relative path against the source's folder."""
    if not isinstance(raw, str) or not raw.strip():
        return None
    value = raw.strip()
    if _URL_SCHEME_RE.match(value) or Path(value).is_absolute():
        return value
    folder = Path(source).parent
    if folder.is_dir():
        return str((folder / value).resolve())
    return value


def _unwrap_item(node: Any) -> Any:
    """The media of a list entry: ``{"node": m}``, ``{"media": m}``, ``{"media_or_ad": m}`` -> ``m``."""
    if isinstance(node, dict) and "id" not in node and "pk" not in node:
        for key in ("node", "media", "media_or_ad"):
            if isinstance(node.get(key), dict):
                return node[key]
    return node


def _owner_of(node: Any) -> tuple[str | None, dict[str, Any] | None]:
    """``(username, user object)`` of a post's owner (``user`` in v1 items, ``owner`` in GraphQL)."""
    if not isinstance(node, dict):
        return None, None
    for key in ("user", "owner"):
        obj = node.get(key)
        if isinstance(obj, dict):
            username = normalise_username(obj.get("username")) if isinstance(obj.get("username"), str) else None
            if username:
                return username, obj
    return None, None


def _image_url(node: Mapping[str, Any]) -> Any:
    """The (cover) image: GraphQL ``display_url``, v1 ``image_versions2``, scraper-API ``image_versions``."""
    return _first_present(
        node.get("display_url"),
        _dig(node, "image_versions2", "candidates", 0, "url"),
        _dig(node, "image_versions", "items", 0, "url"),
        node.get("thumbnail_url"),
    )


def _video_url(node: Mapping[str, Any]) -> str | None:
    url = _first_present(node.get("video_url"), _dig(node, "video_versions", 0, "url"))
    return url if isinstance(url, str) and url.strip() else None


def _carousel(node: Mapping[str, Any], source: str) -> tuple[PostImage, ...]:
    """Every carousel child (v1 ``carousel_media`` or GraphQL ``edge_sidecar_to_children``)."""
    children = _as_list(node.get("carousel_media"))
    if children is None:
        edges = _as_list(_dig(node, "edge_sidecar_to_children", "edges"))
        children = [e.get("node") if isinstance(e, dict) else e for e in edges] if edges is not None else []
    images = []
    for position, child in enumerate(children, start=1):
        if not isinstance(child, dict):
            images.append(PostImage(position=position, url=None))
            continue
        images.append(
            PostImage(
                position=position,
                url=_media_location(_image_url(child), source),
                is_video=child.get("is_video") is True or child.get("media_type") == 2,
                video_url=_video_url(child),
                media_id=_post_id(_first_present(child.get("pk"), child.get("id"))),
            )
        )
    return tuple(images)


def _duration(raw: Any) -> float | None:
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _post_from_node(
    username: str, node: Any, source: str, problems: list[str] | None = None
) -> PostRecord | str:
    """Normalise a GraphQL timeline node or a v1 feed item; or return why it is refused."""
    if not isinstance(node, dict):
        return "post is not an object"
    node = _unwrap_item(node)
    post_id = _post_id(_first_present(node.get("id"), node.get("pk")))
    if post_id is None:
        return "post without id"

    raw_taken = _first_present(node.get("taken_at_timestamp"), node.get("taken_at"))
    try:
        taken_at = _timestamp(raw_taken)
    except ValueError:
        return f"invalid taken_at {raw_taken!r}"

    raw_likes = _first_present(
        _dig(node, "edge_liked_by", "count"),
        _dig(node, "edge_media_preview_like", "count"),
        node.get("like_count"),
    )
    raw_comments = _first_present(
        _dig(node, "edge_media_to_comment", "count"),
        _dig(node, "edge_media_to_parent_comment", "count"),
        _dig(node, "edge_media_preview_comment", "count"),
        node.get("comment_count"),
    )
    try:
        likes = parse_count(raw_likes) or 0
    except ValueError:
        return f"unparseable likes {raw_likes!r}"
    try:
        comments = parse_count(raw_comments) or 0
    except ValueError:
        return f"unparseable comments {raw_comments!r}"

    caption = _first_present(
        _dig(node, "edge_media_to_caption", "edges", 0, "node", "text"),
        _dig(node, "caption", "text"),
    )
    shortcode = _first_present(node.get("shortcode"), node.get("code"))
    images = _carousel(node, source)
    media = _first_present(_image_url(node), images[0].url if images else None)
    is_video = node.get("is_video") is True or node.get("media_type") == 2
    return PostRecord(
        username=username,
        post_id=post_id,
        shortcode=shortcode if isinstance(shortcode, str) and shortcode else None,
        taken_at=taken_at,
        caption=caption if isinstance(caption, str) and caption.strip() else None,
        likes=likes,
        comments=comments,
        media_url=_media_location(media, source),
        is_video=is_video,
        source=source,
        video_url=_video_url(node),
        video_duration=_duration(node.get("video_duration")),
        view_count=_count_or_none(
            _first_present(node.get("video_view_count"), node.get("view_count")), "view count", problems
        ),
        play_count=_count_or_none(
            _first_present(node.get("video_play_count"), node.get("play_count"), node.get("ig_play_count")),
            "play count",
            problems,
        ),
        images=images,
    )


def _fill_missing(target: Any, other: Any, names: Iterable[str]) -> None:
    """Copy each named attribute from ``other`` onto ``target`` where ``target`` has ``None``."""
    for name in names:
        if getattr(target, name) is None and getattr(other, name) is not None:
            setattr(target, name, getattr(other, name))


def _add_post(posts: dict[tuple[str, str], PostRecord], post: PostRecord) -> None:
    """Insert ``post``; a repeat of a known post only fills that post's empty fields."""
    key = (post.username, post.post_id)
    if key in posts:
        _fill_missing(posts[key], post, _MERGEABLE_POST_FIELDS)
        if not posts[key].images and post.images:
            posts[key].images = post.images
    else:
        posts[key] = dataclasses.replace(post)


def _document_label(source: str) -> str:
    """Reject ``record`` for a whole document: its file name (or the source name itself)."""
    return Path(source).name or source


@dataclass
class _Entry:
    source: str
    record: str
    post: PostRecord
    owner: str | None
    owner_obj: dict[str, Any] | None
    own_timeline: bool


@dataclass
class _Group:
    creator: CreatorRecord | None = None
    owners: dict[str, CreatorRecord] = field(default_factory=dict)
    posts: list[PostRecord] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    warnings: list[SourceWarning] = field(default_factory=list)


def _normalise_group(canonical: str | None, documents: Iterable[tuple[str, Any]]) -> _Group:
    """The documents of one file-name user (``canonical``) or, with ``None``, one document whose
    file name names nobody (its posts' owners decide)."""
    out = _Group()
    contributors: list[str] = []
    entries: list[_Entry] = []

    for source, doc in documents:
        label = _document_label(source)
        user, items = _document_parts(doc)
        if user is None and items is None:
            out.rejects.append(Reject(source, label, "unrecognised document shape"))
            out.warnings.append(SourceWarning(source, label, "known shapes: " + "; ".join(KNOWN_SHAPES)))
            continue
        nodes: list[tuple[Any, bool]] = []
        doc_rejects: list[Reject] = []
        doc_warnings: list[SourceWarning] = []
        if user is not None:
            timeline = user.get("edge_owner_to_timeline_media")
            if timeline is not None:
                edges = _dig(timeline, "edges")
                if isinstance(edges, list):
                    nodes.extend((e.get("node") if isinstance(e, dict) else e, True) for e in edges)
                elif not (isinstance(timeline, dict) and "count" in timeline and "edges" not in timeline):
                    reason = "malformed edge_owner_to_timeline_media (no edges list)"
                    doc_rejects.append(Reject(source, "posts", reason))
        if items is not None:
            nodes.extend((item, False) for item in items)

        parsed: list[_Entry] = []
        for position, (node, own) in enumerate(nodes, start=1):
            where = f"record {position}"
            media = _unwrap_item(node)
            if (
                "feed_items" in doc
                and isinstance(node, dict)
                and media is node
                and not {"media_or_ad", "id", "pk"} & set(node)
            ):
                keys = ", ".join(sorted(node)) or "none"
                doc_rejects.append(Reject(source, where, f"feed item without media (keys: {keys})"))
                continue
            owner, owner_obj = _owner_of(media)
            problems: list[str] = []
            post = _post_from_node(canonical or owner or "", node, source, problems)
            doc_warnings.extend(SourceWarning(source, where, problem) for problem in problems)
            if isinstance(post, str):
                doc_rejects.append(Reject(source, where, post))
                continue
            if canonical is None and owner is None:
                doc_rejects.append(Reject(source, where, "post without owner and no username in file name"))
                continue
            parsed.append(_Entry(source, where, post, owner, owner_obj, own))

        if canonical is None and not parsed:
            # Nothing in the document says whose it is (a profile is never attributed by the
            # username inside it): the whole file is refused, as before.
            out.rejects.append(Reject(source, label, "no username in file name"))
            continue
        if canonical is not None:
            if source not in contributors:
                contributors.append(source)
            if out.creator is None:
                out.creator = CreatorRecord(username=canonical)
            if user is not None:
                profile_problems: list[str] = []
                profile = _profile_from_user(canonical, user, profile_problems)
                doc_warnings.extend(SourceWarning(source, "profile", p) for p in profile_problems)
                if isinstance(profile, str):
                    doc_rejects.insert(0, Reject(source, "profile", profile))
                else:
                    _fill_missing(out.creator, profile, _MERGEABLE_CREATOR_FIELDS)
                stated = normalise_username(user.get("username")) if isinstance(user.get("username"), str) else None
                if stated and stated != canonical:
                    doc_warnings.append(
                        SourceWarning(source, "profile", f"document username {stated!r} differs from the file's "
                                      f"user {canonical!r}; the file name rules for the profile")
                    )
        elif user is not None:
            doc_warnings.append(SourceWarning(source, "profile", "profile not attributed: no username in file name"))
        out.rejects.extend(doc_rejects)
        out.warnings.extend(doc_warnings)
        entries.extend(parsed)

    # Attribution: a post's owner decides, unless the same media is also on the file user's own
    # timeline without a contrary owner (a collab shown on both grids stays with the file's user).
    own_ids = {e.post.post_id for e in entries if e.owner is None or e.owner == canonical}
    posts: dict[tuple[str, str], PostRecord] = {}
    for entry in entries:
        post = entry.post
        if canonical is not None and entry.owner is not None and entry.owner != canonical:
            if post.post_id in own_ids:
                message = (f"owner {entry.owner!r} differs from the file's user {canonical!r}; kept under "
                           f"{canonical!r} (the post is also on {canonical!r}'s own timeline)")
                out.warnings.append(SourceWarning(entry.source, entry.record, message))
            else:
                post = dataclasses.replace(post, username=entry.owner)
                message = f"credited to its owner {entry.owner!r}, not the file's user {canonical!r}"
                out.warnings.append(SourceWarning(entry.source, entry.record, message))
        if post.username == canonical and entry.owner == canonical and entry.owner_obj and out.creator is not None:
            profile = _profile_from_user(canonical, entry.owner_obj)
            if not isinstance(profile, str):
                _fill_missing(out.creator, profile, _MERGEABLE_CREATOR_FIELDS)
        if post.username != canonical:
            owner_creator = out.owners.get(post.username)
            profile = _profile_from_user(post.username, entry.owner_obj or {})
            if isinstance(profile, str):
                profile = CreatorRecord(username=post.username)
            profile.sources = (entry.source,)
            if owner_creator is None:
                out.owners[post.username] = profile
            else:
                _merge_creator(out.owners, profile)
        _add_post(posts, post)

    if out.creator is not None:
        out.creator.sources = tuple(contributors)
    out.posts = list(posts.values())
    return out


def normalise_documents(
    username: str, documents: Iterable[tuple[str, Any]]
) -> tuple[CreatorRecord | None, list[PostRecord], list[Reject]]:
    """Merge already-parsed JSON documents of one creator into a profile, posts and rejects.

    ``documents`` are ``(source_name, parsed_json)`` pairs, merged in the given order:
    profile fields come from the first profile document that has them (later ones only
    fill empty fields) and posts are de-duplicated by id (first wins, later repeats fill
    empty fields). The creator is ``None`` only when no document had a recognised shape.
    The profile's username inside a document is ignored: ``username`` (e.g. from the file name)
    rules. A post's owner (``user`` / ``owner``) decides whose post it is; a mismatch with
    ``username`` is a warning (``.warnings`` of the result; ``.owners`` holds the other owners).
    """
    canonical = normalise_username(username)
    if canonical is None:
        raise ValueError(f"invalid username {username!r}")
    group = _normalise_group(canonical, documents)
    result = SourceRead(group.creator, group.posts, group.rejects, group.warnings)
    result.owners = list(group.owners.values())  # type: ignore[attr-defined]
    return result  # type: ignore[return-value]


def _load_json_file(path: Path) -> tuple[Any, Reject | None]:
    """Parse one JSON (or instaloader ``.json.xz``) file, or describe why it cannot be parsed."""
    source = str(path)
    try:
        data = path.read_bytes()
        if path.name.lower().endswith(".xz"):
            data = lzma.decompress(data)
        return json.loads(data), None
    except lzma.LZMAError as exc:
        return None, Reject(source, path.name, f"invalid xz compression: {exc}")
    except json.JSONDecodeError as exc:
        return None, Reject(source, path.name, f"invalid JSON: {exc}")
    except UnicodeDecodeError as exc:
        return None, Reject(source, path.name, f"invalid text encoding: {exc}")
    except OSError as exc:
        return None, Reject(source, path.name, f"unreadable file: {exc}")


def _post_owners(doc: Any) -> list[str | None]:
    """The owner (or ``None``) of every post of a document, in order."""
    user, items = _document_parts(doc)
    nodes = list(items or [])
    edges = _dig(user, "edge_owner_to_timeline_media", "edges") if user is not None else None
    if isinstance(edges, list):
        nodes.extend(e.get("node") if isinstance(e, dict) else e for e in edges)
    return [_owner_of(_unwrap_item(node))[0] for node in nodes]


def _dump_user(name: str, doc: Any) -> str | None:
    """Whose dump a file is: ``(...)`` in its name, instaloader's ``<user>_<id>.json`` naming, or a
    profile document whose every post names that profile's user as owner."""
    username = parse_dump_filename(name)
    if username is None and _is_instaloader(doc):
        username = instaloader_filename_user(name)
    if username is None:
        user, _ = _document_parts(doc)
        stated = user.get("username") if isinstance(user, dict) else None
        owners = set(_post_owners(doc))
        if isinstance(stated, str) and owners and owners == {normalise_username(stated)}:
            username = normalise_username(stated)
    return username


def _has_owned_posts(doc: Any) -> bool:
    """True when some post of the document names its owner (``user`` / ``owner``)."""
    return any(_post_owners(doc))


def is_json_dump(path: Path) -> bool:
    """A file ``read_json_dumps`` reads: ``*.json`` or ``*.json.xz``, any case."""
    return path.name.lower().endswith(JSON_SUFFIXES) and path.is_file()


def read_json_dumps(
    folder: Path | str,
) -> tuple[list[CreatorRecord], list[PostRecord], list[Reject]]:
    """Read every ``*.json`` / ``*.json.xz`` dump in ``folder`` (not recursive, sorted by name).

    The creator comes from the first ``(...)`` in each file name (or instaloader's
    ``<user>_<id>.json.xz`` naming); a file whose name names nobody is attributed by the owners
    of its posts. The files of one creator are merged with :func:`normalise_documents`.
    """
    directory = Path(folder)
    if not directory.is_dir():
        raise NotADirectoryError(f"not a folder: {directory}")
    files = sorted((p for p in directory.iterdir() if is_json_dump(p)), key=lambda p: p.name)
    rejects: list[Reject] = []
    dumps: list[tuple[str | None, str, Any]] = []
    for path in files:
        doc, problem = _load_json_file(path)
        if problem is not None:
            rejects.append(problem)
            continue
        username = _dump_user(path.name, doc)
        if username is None and not _has_owned_posts(doc):
            rejects.append(Reject(str(path), path.name, "no username in file name"))
            continue
        dumps.append((username, str(path), doc))
    result = normalise_dumps(dumps)
    return SourceRead(result[0], result[1], rejects + result[2], result.warnings)  # type: ignore[attr-defined]


def normalise_dumps(
    dumps: Iterable[tuple[str | None, str, Any]],
) -> tuple[list[CreatorRecord], list[PostRecord], list[Reject]]:
    """Group ``(username, source, parsed document)`` triples per user, in order, and normalise each
    user's documents with :func:`normalise_documents`. Shared by the JSON folder and MongoDB sources,
    so the same documents give the same snapshot whichever store they come from.

    A ``None`` username (a file name that names nobody) is attributed by its posts' owners.
    """
    grouped: dict[str | None, list[tuple[str, Any]]] = {}
    anonymous: list[tuple[str, Any]] = []
    for username, source, doc in dumps:
        if username is None:
            anonymous.append((source, doc))
        else:
            grouped.setdefault(username, []).append((source, doc))
    groups = [_normalise_group(normalise_username(u), docs) for u, docs in grouped.items()]
    groups += [_normalise_group(None, [doc]) for doc in anonymous]
    creators: dict[str, CreatorRecord] = {}
    posts: dict[tuple[str, str], PostRecord] = {}
    rejects: list[Reject] = []
    warnings: list[SourceWarning] = []
    for group in groups:
        if group.creator is not None:
            _merge_creator(creators, group.creator)
    for group in groups:
        for owner in group.owners.values():
            _merge_creator(creators, owner)
        for post in group.posts:
            _add_post(posts, post)
        rejects.extend(group.rejects)
        warnings.extend(group.warnings)
    return SourceRead(list(creators.values()), list(posts.values()), rejects, warnings)  # type: ignore[return-value]


# --------------------------------------------------------------------------- everything


def _stored_response(doc: Mapping[str, Any], source: str) -> tuple[Any, Reject | None]:
    filename = str(doc.get("filename") or "")
    status = doc.get("status", 200)
    if isinstance(status, int) and not 200 <= status < 300:
        return None, Reject(source, filename, f"stored error response (HTTP {status})")
    body = doc.get("body")
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    if isinstance(body, str):
        try:
            return json.loads(body), None
        except json.JSONDecodeError as exc:
            return None, Reject(source, filename, f"invalid JSON: {exc}")
    if isinstance(body, dict | list):
        return body, None
    return None, Reject(source, filename, "document has no body")


def read_stored_responses(
    documents: Iterable[Mapping[str, Any]], label: str
) -> tuple[list[CreatorRecord], list[PostRecord], list[Reject]]:
    """Raw responses kept in a document store (``{"filename", "body", "status"}`` each, in file
    name order), grouped per user into creators, posts and rejects like a folder of dumps.

    ``label`` names the store in each reject's source, e.g. ``mongodb:creatorlens.raw_api_responses``.
    """
    rejects: list[Reject] = []
    dumps: list[tuple[str | None, str, Any]] = []
    for doc in documents:
        filename = str(doc.get("filename") or "")
        source = f"{label}/{filename}"
        parsed, problem = _stored_response(doc, source)
        if problem is not None:
            rejects.append(problem)
            continue
        username = _dump_user(filename, parsed)
        if username is None and not _has_owned_posts(parsed):
            rejects.append(Reject(source, filename or "(no filename)", "no username in file name"))
            continue
        dumps.append((username, source, parsed))
    result = normalise_dumps(dumps)
    return SourceRead(result[0], result[1], rejects + result[2], result.warnings)  # type: ignore[attr-defined,return-value]


def _as_paths(values: Iterable[Path | str] | Path | str) -> list[Path | str]:
    """Accept a single path where an iterable of paths is expected."""
    if isinstance(values, str | Path):
        return [values]
    return list(values)


def _merge_creator(creators: dict[str, CreatorRecord], record: CreatorRecord) -> None:
    """Add ``record``; for a known username only fill empty fields and append its sources."""
    existing = creators.get(record.username)
    if existing is None:
        creators[record.username] = dataclasses.replace(record)
        return
    _fill_missing(existing, record, _MERGEABLE_CREATOR_FIELDS)
    new_sources = tuple(s for s in record.sources if s not in existing.sources)
    existing.sources = existing.sources + new_sources


def load_sources(
    csv_paths: Iterable[Path | str] = (),
    json_dirs: Iterable[Path | str] = (),
    document_sources: Iterable[tuple[list[CreatorRecord], list[PostRecord], list[Reject]]] = (),
    *,
    header_map: Mapping[str, Sequence[str]] | str | None = None,
) -> SourceSnapshot:
    """Read all CSV exports, then all JSON dump folders, then ``document_sources`` (records
    already read from elsewhere, e.g. MongoDB, by :func:`normalise_dumps`) into one snapshot.

    Earlier sources win (CSVs in order, then JSON folders in order); later ones only fill
    fields that are still empty. Nothing a file holds raises: a CSV that cannot be mapped is a
    file-level reject, and the other files are read as usual. ``header_map`` (a mapping or the
    JSON text of the ``csv_header_map`` setting) overrides CSV header aliases per field.
    """
    mapping = parse_header_map(header_map) if isinstance(header_map, str) else header_map
    snapshot = SourceSnapshot()
    posts: dict[tuple[str, str], PostRecord] = {}
    for csv_path in _as_paths(csv_paths):
        read = read_csv_file(csv_path, mapping)
        for record in read.records:
            _merge_creator(snapshot.creators, record)
        snapshot.rejects.extend(read.rejects)
        snapshot.warnings.extend(read.warnings)
    read_documents = [read_json_dumps(json_dir) for json_dir in _as_paths(json_dirs)]
    for result in [*read_documents, *document_sources]:
        records, dir_posts, rejects = result[:3]
        for record in records:
            _merge_creator(snapshot.creators, record)
        for post in dir_posts:
            _add_post(posts, post)
        snapshot.rejects.extend(rejects)
        snapshot.warnings.extend(getattr(result, "warnings", ()))
    snapshot.posts = list(posts.values())
    return snapshot
