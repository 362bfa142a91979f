"""The whole study under ``dvc repro`` in a temporary copy of the repository (tiny profile, two
losses, one seed, one ablation, the multi-modal experiment): every notebook runs under papermill.

One session-scoped run is shared by all tests here (kernels are slow). Needs the offline Omniglot
archives (``shared_omniglot_dir`` skips visibly without them).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = (
    pytest.mark.slow
)  # one shared tiny `dvc repro` of the whole study: minutes, not seconds

REPO = Path(__file__).resolve().parents[2]
COPY = ["dmlstudy", "notebooks", "dvc.yaml", "params.yaml", "dvc_plots", ".dvcignore", ".gitignore"]
LOSSES = ["contrastive", "rsw"]


def _env(tmp: Path, data_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        # `python` in dvc.yaml = this venv
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        DVC_NO_ANALYTICS="1",
        MPLBACKEND="Agg",
        DMLSTUDY_DATA_DIR=str(data_dir),
        DMLSTUDY_WORK_DIR=str(tmp / "cache"),
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@t",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@t",
    )
    return env


def dvc(repo: Path, env: dict, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "dvc"), *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
    )
    if check and proc.returncode:
        raise AssertionError(
            f"dvc {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory, shared_omniglot_dir):
    tmp = tmp_path_factory.mktemp("study")
    repo = tmp / "repo"
    repo.mkdir()
    for name in COPY:
        src = REPO / name
        (
            shutil.copytree(src, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
            if src.is_dir()
            else shutil.copy(src, repo / name)
        )
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["study"].update(
        losses=LOSSES, seeds=[0], profile="tiny", ablations=["m_per_class"], multimodal=["omniglot"]
    )
    params["ablations"]["m_per_class"]["sweep"] = {"train.m_per_class": [2, 4]}
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = _env(tmp, shared_omniglot_dir.parent)
    for cmd in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "commit", "-qm", "tiny study"],
    ):
        subprocess.run(cmd, cwd=repo, env=env, check=True)  # dvclive needs a commit
    dvc(repo, env, "init", "-q")
    repro = dvc(repo, env, "repro")
    return repo, env, repro


def test_every_stage_ran_and_rendered(tiny_study):
    repo, _, repro = tiny_study
    for page in [
        "omniglot/prepare.html",
        "omniglot/train/contrastive-seed0.html",
        "omniglot/train/rsw-seed0.html",
        "omniglot/evaluate.html",
        "geometry.html",
        "omniglot/ablation-m_per_class.html",
        "omniglot/multimodal.html",
        "report.html",
        "index.html",
    ]:
        assert (repo / "reports" / page).is_file(), (
            f"missing reports/{page}\n{repro.stdout[-3000:]}"
        )
    html = (repo / "reports" / "omniglot" / "evaluate.html").read_text()
    assert "data:image/png;base64" in html
    index = (repo / "reports" / "index.html").read_text()
    assert 'href="omniglot/evaluate.html"' in index and "contrastive" in index


def test_metrics_and_results(tiny_study):
    repo, env, _ = tiny_study
    metrics = json.loads((repo / "results" / "omniglot" / "metrics.json").read_text())
    assert set(metrics) == set(LOSSES)
    assert all(0 <= metrics[k]["recall@1"] <= 1 for k in LOSSES)
    shown = dvc(repo, env, "metrics", "show", "--json")
    assert "recall@1" in shown.stdout
    for csv in (
        "runs.csv",
        "recall_at_k.csv",
        "val_curves.csv",
        "multimodal.csv",
        "ablations/m_per_class.csv",
    ):
        assert (repo / "results" / "omniglot" / csv).is_file(), csv


def test_repro_again_is_a_noop(tiny_study):
    repo, env, _ = tiny_study
    again = dvc(repo, env, "repro")
    assert "Running stage" not in again.stdout, again.stdout


def test_editing_one_loss_parameter_invalidates_only_its_consumers(tiny_study):
    repo, env, _ = tiny_study
    params = repo / "params.yaml"
    original = params.read_text()
    try:
        p = yaml.safe_load(original)
        p["losses"]["contrastive"]["neg_margin"] = 0.6
        params.write_text(yaml.safe_dump(p, sort_keys=False))
        status = json.loads(dvc(repo, env, "status", "--json").stdout or "{}")
        # train@ of that loss only; plus the stages that read every loss section
        assert set(status) == {
            "check_params",
            "train@omniglot-contrastive-0",
            "geometry",
            "ablation@omniglot-m_per_class",
            "multimodal@omniglot",
        }, status
    finally:
        params.write_text(original)
    assert json.loads(dvc(repo, env, "status", "--json").stdout or "{}") == {}


def test_bad_params_fail_at_the_first_stage_naming_the_key(tiny_study):
    repo, env, _ = tiny_study
    params = repo / "params.yaml"
    original = params.read_text()
    try:
        p = yaml.safe_load(original)
        p["study"]["losses"] = ["contrastive", "tripplet"]
        p["losses"]["tripplet"] = {}
        params.write_text(yaml.safe_dump(p, sort_keys=False))
        proc = dvc(repo, env, "repro", check=False)
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0
        assert "failed to reproduce 'check_params'" in out, out[-3000:]
        assert "unknown loss 'tripplet' (did you mean 'triplet'?)" in out and "Valid choices" in out
        assert "Running stage 'prepare" not in out and "Running stage 'train" not in out
    finally:
        params.write_text(original)
