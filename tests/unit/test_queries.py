"""Named SQL statements (``sql/queries/*.sql``): one definition per name, no caller merging two files'
statements (a later file would silently win), and no SQL written inline in the app."""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest

from creatorlens.queries import QUERY_DIR, load_queries

REPO = Path(__file__).resolve().parents[2]
CODE = ("app", "assets", "bench", "creatorlens", "gpu_ops", "orchestration", "resources")
# The promotion's steps, one file per stage (promote_batch/tags/vision.sql, profiles.sql): the same
# step under the same name in each, and every promotion module loads its own stage's file only.
PER_STAGE_STEPS = {"create_stage", "lock_batch", "record_promotion", "upsert_embeddings"}


def _python_files() -> list[Path]:
    return [p for part in CODE for p in sorted((REPO / part).rglob("*.py"))]


def _is_load_queries(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "load_queries"


def test_a_name_defined_twice_in_one_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "twice.sql").write_text("-- name: a\nSELECT 1;\n\n-- name: a\nSELECT 2;\n")
    with pytest.raises(ValueError, match="query 'a' defined twice"):
        load_queries("twice.sql", tmp_path)


def _defined_in_several_files(query_dir: Path) -> dict[str, list[str]]:
    files: dict[str, list[str]] = defaultdict(list)
    for path in sorted(query_dir.glob("*.sql")):
        for name in load_queries(path.name, query_dir):
            files[name].append(path.name)
    return {name: where for name, where in files.items() if len(where) > 1 and name not in PER_STAGE_STEPS}


def test_no_statement_name_is_defined_in_two_files() -> None:
    twice = _defined_in_several_files(QUERY_DIR)
    assert not twice, f"statement names defined in more than one file: {twice}"
    assert "search_settings" in load_queries("search.sql")


def test_the_check_catches_a_name_defined_in_two_files(tmp_path: Path) -> None:
    (tmp_path / "one.sql").write_text("-- name: shared\nSELECT 1;\n\n-- name: lock_batch\nSELECT 1;\n")
    (tmp_path / "two.sql").write_text("-- name: shared\nSELECT 2;\n\n-- name: lock_batch\nSELECT 2;\n")
    assert _defined_in_several_files(tmp_path) == {"shared": ["one.sql", "two.sql"]}


def test_no_caller_merges_the_statements_of_two_files() -> None:
    """``{**load_queries(a), **load_queries(b)}`` lets b's statement of a name silently replace a's."""
    merges = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            merged = (
                (isinstance(node, ast.Dict) and any(k is None and _is_load_queries(v)
                                                    for k, v in zip(node.keys, node.values, strict=True)))
                or (isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr)
                    and (_is_load_queries(node.left) or _is_load_queries(node.right)))
                or (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "update"
                    and any(_is_load_queries(a) for a in node.args))
            )
            if merged:
                merges.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not merges, f"statements of several files merged into one dict: {merges}"


_SQL_START = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|WITH|EXPLAIN|CREATE|ALTER|DROP)\s", re.MULTILINE)


@pytest.mark.parametrize("path", sorted((REPO / "app").glob("*.py")), ids=lambda p: p.name)
def test_the_app_writes_no_sql_inline(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    inline = [node.lineno for node in ast.walk(tree)
              if isinstance(node, ast.Constant) and isinstance(node.value, str) and _SQL_START.match(node.value)]
    assert not inline, f"{path.name}: SQL text at lines {inline} (put it in sql/queries/ and load it by name)"
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module == "sqlalchemy"
                for alias in node.names}
    assert "text" not in imported, f"{path.name}: sqlalchemy.text (the app runs named statements only)"


@pytest.mark.parametrize("module, filename", [("app/queries.py", "app.sql"), ("app/auth.py", "auth.sql")])
def test_the_app_runs_every_statement_of_its_file_and_no_other(module: str, filename: str) -> None:
    """Names passed to the module's ``_execute`` / ``_rows`` exist in its file, and each statement is used."""
    tree = ast.parse((REPO / module).read_text(encoding="utf-8"))
    used = {node.args[1].value for node in ast.walk(tree)
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("_execute", "_rows")
            and len(node.args) > 1 and isinstance(node.args[1], ast.Constant)}
    defined = set(load_queries(filename))
    assert used - defined == set(), f"{module} runs statements {filename} lacks"
    assert defined - used == set(), f"{filename} holds statements {module} never runs"
