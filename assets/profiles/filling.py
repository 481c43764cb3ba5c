"""Profile enrichment, the pure part: map an API answer to creator fields, fill only empty
fields of a creator row, and measure what the enrichment gained (the coverage report).

No network, no Dagster: the HTTP client lives in :mod:`resources.profile_api`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from creatorlens.fields import is_empty

# Fields the enrichment may fill on a creator row, in report order. Never overwritten when set.
FILL_FIELDS = ("category", "bio", "full_name", "followers", "is_business", "is_verified")
# The two fields the coverage report's "net profiles gained" counts.
KEY_FIELDS = ("category", "bio")


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
