"""The tiny study fanned out on two dask worker processes ends where a serial ``dvc repro`` ends:
the same metrics, and ``dvc status`` clean. On the way, one blocked run fails: the launch names
it and its root error, the other runs finish and their stages are recorded; the next launch
trains only what is left (the finished runs are reused). Needs the offline Omniglot archives."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.support.tiny_repo import dvc, env, make_repo

pytestmark = pytest.mark.slow  # the tiny study's notebooks under dvc repro: minutes

TIMING = ["train_seconds", "images_per_s"]  # wall-clock columns, the only ones allowed to differ
BLOCKED = "work/multimodal/omniglot/contrastive/seed0"


def fanout(repo: Path, run_env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dmlstudy.execution.fanout", "--workers", "2"],
        cwd=repo,
        env=run_env,
        capture_output=True,
        text=True,
    )


def table(path: Path) -> pd.DataFrame:
    return pd.read_csv(path).drop(columns=TIMING, errors="ignore")


def test_fanout_matches_serial_dvc_repro_and_resumes_after_a_failure(
    tmp_path: Path, tiny_study, shared_omniglot_dir: Path
) -> None:
    serial, _, _ = tiny_study
    run_env = env(tmp_path, shared_omniglot_dir.parent)
    repo = make_repo(tmp_path, run_env)
    blocker = repo / Path(BLOCKED).parent  # a file where the run's folder goes
    blocker.parent.mkdir(parents=True)
    blocker.write_text("")

    first = fanout(repo, run_env)
    out = first.stdout + first.stderr
    assert first.returncode == 1, out[-4000:]
    assert "4 of 4 training stages out of date: 6 run(s)" in out
    assert "1 of 6 training run(s) failed" in out, out[-4000:]
    assert f"  multimodal@omniglot ({BLOCKED})\n    root error: " in out
    assert "NotADirectoryError" in out or "FileExistsError" in out
    status = json.loads(dvc(repo, run_env, "status", "--json").stdout or "{}")
    assert not any(s.startswith(("train@", "ablation@")) for s in status), status
    assert "multimodal@omniglot" in status

    blocker.unlink()
    second = fanout(repo, run_env)
    out = second.stdout + second.stderr
    assert second.returncode == 0, out[-4000:]
    assert "1 of 4 training stages out of date: 2 run(s)" in out
    assert f"{BLOCKED}): trained" in out
    assert "work/multimodal/omniglot/rsw/seed0): reused" in out
    assert json.loads(dvc(repo, run_env, "status", "--json").stdout or "{}") == {}

    results, reference = repo / "results" / "omniglot", serial / "results" / "omniglot"
    files = sorted(p.relative_to(reference) for p in reference.rglob("*") if p.is_file())
    assert files and files == sorted(
        p.relative_to(results) for p in results.rglob("*") if p.is_file()
    )
    for name in files:  # every result file: the same numbers, wall-clock columns aside
        if name.suffix == ".csv":
            pd.testing.assert_frame_equal(
                table(results / name), table(reference / name), check_exact=True
            )
        elif name.suffix == ".json":
            assert json.loads((results / name).read_text()) == json.loads(
                (reference / name).read_text()
            ), name
