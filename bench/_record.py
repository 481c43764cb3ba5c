"""What a benchmark run leaves for the README: ``--record`` writes ``bench/results/<name>.json``.

A record holds the command that produced it, when, on how many cores at what load, and the rows
the README's figures table shows (benchmark, result, baseline measured in the same run), each
formatted by the benchmark from its own numbers. ``bench/figures.py`` renders the table from these
files; nothing in the table is typed by hand (``tests/unit/test_bench_figures.py`` checks it).
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    return {"cores": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()]}


def record(name: str, rows: list[tuple[str, str, str]], *, note: str = "", argv: list[str] | None = None,
           directory: Path = RESULTS) -> Path:
    """Write ``name``'s record: ``rows`` are (benchmark, result, baseline in the same run)."""
    args = sys.argv[1:] if argv is None else argv
    command = " ".join(["python", f"bench/{name}.py", *(shlex.quote(a) for a in args if a != "--record")])
    data = {
        "name": name,
        "command": command,
        "measured": datetime.now(UTC).strftime("%Y-%m-%d"),
        **machine(),
        "note": note,
        "rows": [{"benchmark": b, "result": r, "baseline": base} for b, r, base in rows],
    }
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    print(f"recorded {path} (bench/figures.py puts it in the README)")
    return path
