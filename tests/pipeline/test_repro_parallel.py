"""tests.support.tiny_repo.repro_parallel, which runs the photo rehearsal's stages two at a time:
stages in pipeline order, independent ones at once, each recorded as a serial ``dvc repro``
records it, a failing one reported with its output."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.tiny_repo import dvc, repro_parallel

pytestmark = pytest.mark.slow  # DVC processes: seconds

#: each stage logs its start and end; ``a`` waits (up to 60 s) for ``c`` to start, so that the
#: two must run at once; ``fail`` exits 3 before writing the stage's output
STAGE_PY = """\
import pathlib, sys, time
name, wait, fail = sys.argv[1], sys.argv[2], sys.argv[3] == "fail"
log = pathlib.Path("log.txt")
with log.open("a") as f:
    f.write(f"{name} start\\n")
deadline = time.monotonic() + 60
while wait and f"{wait} start" not in log.read_text() and time.monotonic() < deadline:
    time.sleep(0.05)
with log.open("a") as f:
    f.write(f"{name} end\\n")
if fail:
    sys.exit(3)
pathlib.Path(f"{name}.txt").write_text("x")
"""
DEPS = {"a": [], "b": ["a"], "c": [], "d": ["b", "c"]}


def _repo(tmp: Path, fail: str = "") -> tuple[Path, dict]:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    for cmd in (["git", "init", "-q"], [str(Path(sys.executable).parent / "dvc"), "init", "-q"]):
        subprocess.run(cmd, cwd=tmp, env=env, check=True)
    (tmp / "stage.py").write_text(STAGE_PY)
    (tmp / "dvc.yaml").write_text(
        "stages:\n"
        + "".join(
            f"  {name}:\n"
            f"    cmd: python stage.py {name} '{'c' if name == 'a' else ''}' "
            f"{'fail' if name == fail else 'ok'}\n"
            f"    deps: [stage.py{''.join(f', {d}.txt' for d in deps)}]\n"
            f"    outs: [{name}.txt]\n"
            for name, deps in DEPS.items()
        )
    )
    return tmp, env


def test_stages_run_in_order_two_at_a_time_and_recorded(tmp_path):
    repo, env = _repo(tmp_path)
    ran = repro_parallel(repo, env, tmp_path / "logs", jobs=2, leave=["d"])
    assert sorted(ran) == ["a", "b", "c"]
    log = (repo / "log.txt").read_text().split("\n")
    assert log.index("c start") < log.index("a end")  # c, independent, alongside a
    assert log.index("a end") < log.index("b start")  # b after the stage it depends on
    last = dvc(repo, env, "repro").stdout
    assert re.findall(r"Running stage '(.+)'", last) == ["d"], last
    assert sorted(re.findall(r"Stage '(.+)' didn't change", last)) == ["a", "b", "c"], last


def test_a_failing_stage_fails_with_its_output_and_nothing_after_it_runs(tmp_path):
    repo, env = _repo(tmp_path, fail="a")
    with pytest.raises(AssertionError, match=r"failed: a\n(.|\n)*Running stage 'a'"):
        repro_parallel(repo, env, tmp_path / "logs", jobs=2, leave=["d"])
    log = (repo / "log.txt").read_text()
    assert "c end" in log and "b start" not in log  # c, running already, ends; b never starts
