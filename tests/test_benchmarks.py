"""The benchmark scripts still run (at tiny sizes): they print figures and assert nothing, so
only running them shows that they follow the package's interfaces."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

TINY = {
    "bench_step_vs_bare.py": [
        "--blocks",
        "1",
        "--steps",
        "1",
        "--batch-size",
        "16",
        "--threads",
        "1",
    ],
    "bench_stage_overhead.py": ["--repeats", "1"],
    "bench_training.py": [
        "--steps",
        "1",
        "--warmup-steps",
        "1",
        "--batch-size",
        "16",
        "--threads",
        "1",
    ],
}


@pytest.mark.parametrize("script", sorted(TINY))
def test_benchmark_runs_at_tiny_size(script: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / script), *TINY[script]],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    prints = {"bench_stage_overhead.py": "paper-study stage command"}.get(script, "img/s")
    assert prints in out.stdout or "images/s" in out.stdout, out.stdout
