"""Profile enrichment, the pure part: map an API answer to creator fields, fill only empty
fields of a creator row, and measure what the enrichment gained (the coverage report).

No network, no Dagster: the HTTP client lives in :mod:`resources.profile_api`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from creatorlens.sources import clean_bio, parse_count

BIO_LIMIT = 500

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
# Fields the enrichment may fill on a creator row, in report order. Never overwritten when set.
FILL_FIELDS = ("category", "bio", "full_name", "followers", "is_business", "is_verified")
# The two fields the coverage report's "net profiles gained" counts.
KEY_FIELDS = ("category", "bio")


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


def dig(obj: Any, path: str) -> Any:
    """Follow a dotted path through dicts (and list indexes); ``None`` when a step is missing."""
    for part in path.split(".") if path else ():
        if isinstance(obj, dict):
            obj = obj.get(part)
        elif isinstance(obj, list) and part.lstrip("-").isdigit() and -len(obj) <= int(part) < len(obj):
            obj = obj[int(part)]
        else:
            return None
    return obj


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


def is_empty(value: Any) -> bool:
    """Missing in a creator row: None, NaN/NA/NaT, or a blank string."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, bool | int | list | tuple | dict | set):
        return False
    import pandas as pd  # pd.NA, NaT, numpy scalars from DataFrame rows

    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def fill_creator(row: Mapping[str, Any], profile: Mapping[str, Any] | None,
                 fields: Iterable[str] = FILL_FIELDS) -> tuple[dict[str, Any], list[str]]:
    """Copy of ``row`` with empty ``fields`` taken from ``profile``; never overwrites a value.

    Returns the new row and the names of the fields that were filled.
    """
    out = dict(row)
    filled: list[str] = []
    if not profile:
        return out, filled
    for name in fields:
        value = profile.get(name)
        if is_empty(out.get(name)) and not is_empty(value):
            out[name] = value
            filled.append(name)
    return out, filled


@dataclass
class CoverageReport:
    """Before/after fill rates per field, net profiles gained and the share of business accounts."""

    creators: int = 0
    filled_before: dict[str, int] = field(default_factory=dict)
    filled_after: dict[str, int] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)
    gained: int = 0  # creators that had category or bio empty and now have it
    business: int = 0
    business_known: int = 0

    def rate(self, counts: Mapping[str, int], name: str) -> float:
        return counts.get(name, 0) / self.creators if self.creators else 0.0

    @property
    def business_share(self) -> float | None:
        return self.business / self.business_known if self.business_known else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "creators": self.creators,
            "fill_rate_before": {k: round(self.rate(self.filled_before, k), 4) for k in self.filled_before},
            "fill_rate_after": {k: round(self.rate(self.filled_after, k), 4) for k in self.filled_after},
            "net_profiles_gained": self.gained,
            "business_share": None if self.business_share is None else round(self.business_share, 4),
            "statuses": dict(self.statuses),
        }

    def rows(self) -> list[tuple[str, str, str, str]]:
        out = []
        for name in self.filled_before:
            before, after = self.filled_before[name], self.filled_after.get(name, 0)
            out.append((name, f"{self.rate(self.filled_before, name):.1%}", f"{self.rate(self.filled_after, name):.1%}",
                        f"+{after - before}"))
        return out

    def markdown(self) -> str:
        lines = ["| field | before | after | filled |", "|---|---|---|---|"]
        lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in self.rows()]
        return "\n".join(lines) + "\n\n" + self.summary()

    def summary(self) -> str:
        share = "n/a" if self.business_share is None else f"{self.business_share:.1%}"
        statuses = ", ".join(f"{k} {v}" for k, v in sorted(self.statuses.items())) or "none fetched"
        return (f"{self.creators} creators; net profiles gained (category or bio newly filled): {self.gained}; "
                f"business accounts: {share} of {self.business_known} known; fetch outcomes: {statuses}")

    def text(self) -> str:
        width = max([len(r[0]) for r in self.rows()] + [5])
        lines = [f"{'field':<{width}}  before   after  filled"]
        lines += [f"{a:<{width}}  {b:>6}  {c:>6}  {d:>6}" for a, b, c, d in self.rows()]
        return "\n".join(lines) + "\n" + self.summary()


def coverage(before: Iterable[Mapping[str, Any]], after: Iterable[Mapping[str, Any]],
             statuses: Iterable[str | None] = (), fields: Iterable[str] = FILL_FIELDS,
             business_flags: Iterable[bool | None] = ()) -> CoverageReport:
    """Compare rows before and after enrichment (same order, same length).

    ``business_flags`` are the API's ``is_business`` answers of the fetched profiles: the
    share of business accounts is measured on what the API said, not on the merged rows.
    """
    fields = tuple(fields)
    report = CoverageReport(filled_before={f: 0 for f in fields}, filled_after={f: 0 for f in fields})
    for old, new in zip(before, after, strict=True):
        report.creators += 1
        for name in fields:
            report.filled_before[name] += not is_empty(old.get(name))
            report.filled_after[name] += not is_empty(new.get(name))
        if any(is_empty(old.get(k)) and not is_empty(new.get(k)) for k in KEY_FIELDS):
            report.gained += 1
    for status in statuses:
        if status:
            report.statuses[status] = report.statuses.get(status, 0) + 1
    for flag in business_flags:
        if isinstance(flag, bool):
            report.business_known += 1
            report.business += flag
    return report
