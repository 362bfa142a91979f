"""``make study`` checks params.yaml before DVC parses dvc.yaml (which would only say "Could not
find 'study.losses'" for a misspelt key): the Makefile runs in a scratch folder with a stand-in
venv whose ``dvc`` only records that it ran. The tests run under ``make test`` in CI, so the
outer make's MAKEFLAGS/MAKELEVEL are dropped: a nested make would print "Entering directory"."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
_OUTER_MAKE = {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "MAKE_TERMOUT", "MAKE_TERMERR"}


def _make(args: list[str], cwd: Path, env: dict[str, str] | None = None):
    """``make ARGS`` in ``cwd`` as a top-level make, whatever make (if any) runs pytest."""
    base = {k: v for k, v in os.environ.items() if k not in _OUTER_MAKE}
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=cwd,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
    )


def _make_study(tmp_path: Path, params: dict, env: dict[str, str]) -> subprocess.CompletedProcess:
    shutil.copy(REPO / "Makefile", tmp_path / "Makefile")
    (tmp_path / "pyproject.toml").write_text("")
    past = os.path.getmtime(tmp_path / "pyproject.toml") - 100
    os.utime(tmp_path / "pyproject.toml", (past, past))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (bin_dir / "dvc").write_text("#!/bin/sh\necho DVC-REPRO-RAN\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    (tmp_path / "venv" / ".installed").touch()  # newer than pyproject.toml: no install
    return _make(["study", "VENV=venv"], tmp_path, {**env, "PYTHONPATH": str(REPO)})


@pytest.fixture
def small_params() -> dict:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["study"].update(losses=["triplet"], ablations=[], multimodal=[])
    return raw


def test_misspelt_study_key_gets_did_you_mean_before_dvc(tmp_path, small_params):
    small_params["study"]["lossess"] = small_params["study"].pop("losses")
    proc = _make_study(tmp_path, small_params, {})
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "unknown key 'lossess' (did you mean 'losses'?)" in out, out
    assert "DVC-REPRO-RAN" not in out


def test_valid_params_then_dvc_repro(tmp_path, small_params, shared_omniglot_dir):
    env = {"DMLSTUDY_DATA_DIR": str(shared_omniglot_dir.parent)}
    proc = _make_study(tmp_path, small_params, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "params.yaml: OK (1 training runs)" in proc.stderr
    assert proc.stdout.strip().endswith("DVC-REPRO-RAN")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], "dvc repro"),
        (["WORKERS=3"], "-m dmlstudy.execution.fanout --workers 3"),
        (
            ["WORKERS=2", "SCHEDULER=tcp://head:8786"],
            "-m dmlstudy.execution.fanout --workers 2 --scheduler tcp://head:8786",
        ),
    ],
)
def test_workers_fan_the_study_out_after_the_params_check(tmp_path, args, expected):
    shutil.copy(REPO / "Makefile", tmp_path / "Makefile")
    (tmp_path / "pyproject.toml").write_text("")
    proc = _make(["-n", "study", "VENV=venv", *args], tmp_path)
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0, proc.stderr
    assert "-m dmlstudy.study.check_params params.yaml" in lines[-2]
    assert lines[-1].endswith(expected), lines[-1]
