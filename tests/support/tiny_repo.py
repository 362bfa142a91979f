"""A tiny study in a temporary copy of the repository, run by DVC as a user would (shared by the
``dvc repro`` tests and the fan-out's): tiny profile, two losses, one seed, the ``m_per_class``
ablation with two arms, the multi-modal experiment. Needs the offline Omniglot archives."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
COPY = [
    "dmlstudy",
    "notebooks",
    "dvc.yaml",
    "params.yaml",
    "dvc_plots",
    ".dvcignore",
    ".gitignore",
    "README.md",
    "results/tuning/README.md",
]
LOSSES = ["contrastive", "rsw"]


def env(tmp: Path, data_dir: Path) -> dict[str, str]:
    """The environment of a pipeline run in ``tmp`` with the archives of ``data_dir``."""
    out = dict(os.environ)
    out.update(
        # `python` in dvc.yaml = this venv
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{out.get('PATH', '')}",
        DVC_NO_ANALYTICS="1",
        MPLBACKEND="Agg",
        DMLSTUDY_DATA_DIR=str(data_dir),
        DMLSTUDY_WORK_DIR=str(tmp / "cache"),
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@t",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@t",
    )
    return out


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


def _fake_campaign(params: dict, folder: Path) -> None:
    """The campaign's record (optuna.db, trials.csv, summary.csv, winners.csv) from stand-in
    trainings, so that the evaluation page renders its campaign section from files."""
    from dmlstudy.config import config_from_dict
    from dmlstudy.study import campaign
    from tests.support.campaign_stand_in import StandIn

    tuning = {**params["tuning"], "epochs_per_loss": 4, "confirm_top": 1, "confirm_seeds": [0, 1]}
    config = config_from_dict({**params, "tuning": tuning})
    losses = config.study.losses
    camp = campaign.Campaign(
        config,
        prepared_dir=Path("p"),
        out_dir=folder.parent / "runs",
        results=folder,
        trainer=StandIn({loss: 2 for loss in losses}),
    )
    camp.work(losses, export=False)
    camp.export()
    shutil.rmtree(folder.parent / "runs", ignore_errors=True)


def make_repo(
    tmp: Path,
    env: dict[str, str],
    *,
    study: dict[str, Any] | None = None,
    edit: Callable[[Path, dict[str, Any]], None] | None = None,
    campaign: bool = True,
) -> Path:
    """``tmp/repo``: this checkout's pipeline with the tiny study's params and a stand-in tuning
    campaign, committed (dvclive needs a commit) and ``dvc init``-ed.

    ``study`` replaces the tiny Omniglot study's ``study`` keys (and its ablation sweep);
    ``edit(repo, params)`` changes the copy and its params before the commit; ``campaign=False``
    writes no stand-in campaign (a study whose datasets the campaign does not tune)."""
    repo = tmp / "repo"
    repo.mkdir()
    for name in COPY:
        src = REPO / name
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (
            shutil.copytree(src, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
            if src.is_dir()
            else shutil.copy(src, repo / name)
        )
    params = yaml.safe_load((repo / "params.yaml").read_text())
    if study is None:
        params["study"].update(
            losses=LOSSES,
            seeds=[0],
            profile="tiny",
            ablations=["m_per_class"],
            multimodal=["omniglot"],
        )
        params["ablations"]["m_per_class"]["sweep"] = {"train.m_per_class": [2, 4]}
    else:
        params["study"].update(study)
    if edit is not None:
        edit(repo, params)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    if campaign:
        _fake_campaign(params, repo / "results" / "tuning" / "omniglot")
    for cmd in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "commit", "-qm", "tiny study"],
    ):
        subprocess.run(cmd, cwd=repo, env=env, check=True)
    dvc(repo, env, "init", "-q")
    return repo
