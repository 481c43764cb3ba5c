"""Named SQL statements loaded from ``sql/queries/*.sql`` (``-- name: x`` headers).

SQL lives in files, parameterised with psycopg's ``%(name)s`` placeholders; nothing here
builds SQL from data.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from creatorlens.settings import SQL_DIR

QUERY_DIR = SQL_DIR / "queries"
_NAME_RE = re.compile(r"^--\s*name:\s*([a-z0-9_]+)\s*$", re.MULTILINE)


@cache
def load_queries(filename: str, query_dir: Path = QUERY_DIR) -> dict[str, str]:
    """Map statement name -> SQL text for one file; text before the first header is a comment block."""
    text = (query_dir / filename).read_text(encoding="utf-8")
    parts = _NAME_RE.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"{filename}: query {name!r} defined twice")
        queries[name] = body.strip()
    if not queries:
        raise ValueError(f"{filename}: no '-- name:' sections")
    return queries


def like_escape(text: str) -> str:
    """``text`` as a literal inside a LIKE/ILIKE pattern (default escape character backslash)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
