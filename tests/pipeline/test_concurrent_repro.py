"""A second `dvc repro` started while one runs is refused at once by DVC's own lock of the stage's
outputs (``.dvc/tmp/rwlock``), naming the running process; the first one finishes untouched.
A second trainer outside DVC (a fan-out worker, a hand-started notebook) meets the trainer's
run-folder lock instead (tests/training/test_runlock.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

DVC_YAML = """\
stages:
  slow:
    cmd: python -c "import pathlib, time; pathlib.Path('started').touch(); time.sleep(6); pathlib.Path('out').write_text('y')"
    outs: [out]
"""  # noqa: E501


def test_second_dvc_repro_is_refused_naming_the_running_one(tmp_path):
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    dvc = str(Path(sys.executable).parent / "dvc")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([dvc, "init", "-q"], cwd=tmp_path, env=env, check=True)
    (tmp_path / "dvc.yaml").write_text(DVC_YAML)
    first = subprocess.Popen(
        [dvc, "repro"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "started").exists():
            assert first.poll() is None and time.monotonic() < deadline, "first repro never started"
            time.sleep(0.1)
        second = subprocess.run(
            [dvc, "repro"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )
        out = second.stdout + second.stderr
        assert second.returncode != 0
        assert "is busy, it is being blocked by" in out and f"(PID {first.pid})" in out, out
        assert first.poll() is None  # the running one is untouched
    finally:
        stdout, _ = first.communicate(timeout=120)
    assert first.returncode == 0, stdout
    assert (tmp_path / "out").read_text() == "y"
