"""bench/gpu.py cannot rot: its --cpu-smoke run (every step, tiny models, on the CPU) prints every stage."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.gpu import STAGES  # noqa: E402


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES", "")}
    return subprocess.run([sys.executable, str(ROOT / "bench" / "gpu.py"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=240)


def test_cpu_smoke_prints_every_stage_with_a_rate():
    done = _run("--cpu-smoke")
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("stage "))
    rows = lines[header + 1:]
    for stage in STAGES:
        mine = [r for r in rows if r.startswith(stage)]
        assert mine, f"{stage!r} missing from the table:\n{done.stdout}"
        # the images/s column (5th after the stage name) is a positive number on at least one row
        rates = []
        for r in mine:
            fields = r[len(stage):].split()
            if re.fullmatch(r"\d+(\.\d+)?", fields[3]):
                rates.append(float(fields[3]))
        assert rates and max(rates) > 0, f"no measured rate for {stage!r}:\n" + "\n".join(mine)
    for batch in ("1", "2"):
        for dtype in ("fp32", "fp16"):
            assert any(r.startswith("whole GPU chain") and r.split()[4] == dtype and r.split()[5] == batch
                       for r in rows), (dtype, batch, done.stdout)
    assert re.search(r"\d+ CPU cores; load average", done.stdout)
    assert "best whole chain:" in done.stdout


def test_without_a_gpu_it_refuses_clearly():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    done = _run()
    assert done.returncode == 2
    assert "no CUDA GPU" in done.stderr and "--cpu-smoke" in done.stderr
