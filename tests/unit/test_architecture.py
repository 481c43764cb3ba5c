"""The layer order as a contract CI checks: import-linter's contracts in pyproject.toml, run here.

Layers, top to bottom: orchestration → app → assets → resources → creatorlens → gpu_ops. Stages
(assets/<stage>/) are independent of each other; gpu_ops imports no dagster, SQL or HTTP client;
the app needs no Dagster. Function-local imports count too (grimp reads every import statement).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def test_import_contracts_are_kept():
    result = subprocess.run([str(LINT_IMPORTS), "--no-cache", "--no-logo"], cwd=REPO, capture_output=True,
                            text=True, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 kept, 0 broken" in result.stdout


@pytest.mark.parametrize("upward", [
    ("resources/blobs.py", "from assets.common.keys import RAW_POSTS\n"),
    ("gpu_ops/prefetch.py", "import httpx\n"),
    ("assets/vision/common.py", "def _late():\n    from assets.tagging import taxonomy\n"),
])
def test_the_contract_catches_an_upward_or_forbidden_import(tmp_path, upward):
    """The same check on a copy of the tree with one bad import added: it must fail."""
    import shutil

    copy = tmp_path / "repo"
    for part in ("orchestration", "app", "assets", "resources", "creatorlens", "gpu_ops"):
        shutil.copytree(REPO / part, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", copy / "pyproject.toml")
    path, line = upward
    with open(copy / path, "a", encoding="utf-8") as fh:
        fh.write("\n" + line)
    result = subprocess.run([str(LINT_IMPORTS), "--no-cache", "--no-logo"], cwd=copy, capture_output=True,
                            text=True, env={"PYTHONPATH": str(copy), "PATH": "/usr/bin:/bin"}, timeout=300)
    assert result.returncode != 0, result.stdout
    assert "BROKEN" in result.stdout
