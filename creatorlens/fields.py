"""Field cleaners shared by every reader of raw creator data: the source files (assets/sources),
the profile API and the paged fetcher (resources/), and the profile stage (assets/profiles).

A follower count arrives as ``"1.2M"`` in a CSV export and as ``1200000`` in an API answer, a
username as ``@Name`` or a profile URL, a bio over several lines: each is cleaned here, once,
the same way for every reader. Pure functions; nothing here imports another project package.
"""

from __future__ import annotations

import math
import re
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

PLATFORM = "instagram"
BIO_LIMIT = 500


USERNAME_PATTERN = r"^[a-z0-9._]{1,30}$"


_USERNAME_RE = re.compile(USERNAME_PATTERN)


_URL_PREFIX_RE = re.compile(r"^(?:https?://)?(?:www\.|m\.)?instagram\.com/", re.IGNORECASE)


_COUNT_RE = re.compile(
    r"^(?P<int>\d{1,3}(?:[,\u00a0\u202f ]\d{3})+|\d+)?(?:\.(?P<frac>\d+))?\s*(?P<suffix>[kmb])?$",
    re.IGNORECASE,
)


_COUNT_SUFFIX = {"k": 10**3, "m": 10**6, "b": 10**9}


# European thousands separators: "12.345", "1.234.567" (a count has no decimals without a suffix).
_EUROPEAN_THOUSANDS_RE = re.compile(r"^\d{1,3}(?:\.\d{3})+$")
# European decimal comma before a suffix: "1,2M", "3,45 K".
_EUROPEAN_DECIMAL_RE = re.compile(r"^(\d+),(\d{1,2})\s*([kmb])$", re.IGNORECASE)


# Explicit "no value" placeholders seen in exports; they mean missing, not garbage.
_COUNT_PLACEHOLDERS = frozenset({"", "-", "\u2013", "\u2014", "n/a", "na", "nan", "none", "null"})


def normalise_username(raw: str | None) -> str | None:
    """Return the canonical lowercase username, or ``None`` when empty or invalid.

    Accepts ``@name``, ``instagram.com/name`` and ``https://www.instagram.com/name/?hl=en``
    forms. Anything left after stripping those must match ``^[a-z0-9._]{1,30}$``.
    """
    if not isinstance(raw, str):
        return None
    value = raw.strip()
    prefix = _URL_PREFIX_RE.match(value)
    if prefix:
        value = value[prefix.end() :]
        value = re.split(r"[?#]", value, maxsplit=1)[0]
    value = value.rstrip("/").lstrip("@").strip().lower()
    return value if _USERNAME_RE.match(value) else None


def parse_count(raw: Any) -> int | None:
    """Parse a follower/like count such as ``"12,345"``, ``"1.2M"``, ``"350k"`` or ``42``.

    European forms are read too: ``"12.345"`` (thousands dots; a count without a suffix has
    no decimals) and ``"1,2M"`` (decimal comma before a suffix). ``"—"``/``"–"`` mean missing.

    Returns ``None`` for a missing value (``None``, ``""``, ``"-"``, ``"N/A"``, NaN) and
    raises ``ValueError`` for anything else that is not a non-negative count.
    """
    if raw is None:
        return None
    if isinstance(raw, bool):
        raise ValueError(f"not a count: {raw!r}")
    if isinstance(raw, int):
        if raw < 0:
            raise ValueError(f"negative count: {raw!r}")
        return raw
    if isinstance(raw, float | Decimal):
        if isinstance(raw, float) and math.isnan(raw):
            return None
        if not math.isfinite(raw) or raw < 0:
            raise ValueError(f"not a count: {raw!r}")
        return int(Decimal(raw).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    if not isinstance(raw, str):
        raise ValueError(f"not a count: {raw!r}")
    text = raw.strip()
    if text.lower() in _COUNT_PLACEHOLDERS:
        return None
    if _EUROPEAN_THOUSANDS_RE.match(text):
        return int(text.replace(".", ""))
    european = _EUROPEAN_DECIMAL_RE.match(text)
    if european:
        text = f"{european[1]}.{european[2]}{european[3]}"
    match = _COUNT_RE.match(text)
    if not match or (match["int"] is None and match["frac"] is None):
        raise ValueError(f"not a count: {raw!r}")
    integer = re.sub(r"\D", "", match["int"] or "") or "0"
    number = Decimal(f"{integer}.{match['frac'] or '0'}")
    if match["suffix"]:
        number *= _COUNT_SUFFIX[match["suffix"].lower()]
    return int(number.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def one_line(raw: str | None) -> str | None:
    """Collapse every whitespace run (newlines included) to one space; empty -> ``None``."""
    if raw is None:
        return None
    text = " ".join(raw.split())
    return text or None


def clean_bio(raw: str | None, limit: int = BIO_LIMIT) -> str | None:
    """Return the bio on one line (whitespace collapsed), stripped, cut at ``limit`` chars."""
    text = one_line(raw)
    if text is None:
        return None
    return text[:limit].rstrip() or None




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
