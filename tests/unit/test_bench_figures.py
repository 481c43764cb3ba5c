"""The README's figures table is generated from the benchmarks' records, never typed."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_readme_table_is_what_the_records_give() -> None:
    figures = _load("figures")
    readme = (ROOT / "README.md").read_text()
    assert figures.splice(readme, figures.render()) == readme, "run python bench/figures.py after a --record run"


def test_a_record_becomes_rows_with_its_command_date_and_machine(tmp_path) -> None:
    record, figures = _load("_record"), _load("figures")
    record.record("promotion", [("promotion | new rows", "90,000 rows/s", "row by row: 11.3× slower")],
                  argv=["--rows", "50000", "--record"], directory=tmp_path, note="quiet machine")
    data = json.loads((tmp_path / "promotion.json").read_text())
    assert data["command"] == "python bench/promotion.py --rows 50000" and data["cores"] >= 1
    block = figures.render(tmp_path)
    assert "| promotion \\| new rows | 90,000 rows/s | row by row: 11.3× slower |" in block
    assert "`python bench/promotion.py --rows 50000`" in block and "- `promotion`: quiet machine" in block
    edited = figures.splice(f"x\n{figures.START}\nold\n{figures.END}\ny", block)
    assert edited.startswith("x\n") and edited.endswith("\ny") and "old" not in edited
