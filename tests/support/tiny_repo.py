"""A tiny study in a temporary copy of the repository, run by DVC as a user would (shared by the
``dvc repro`` tests and the fan-out's): tiny profile, two losses, one seed, the ``m_per_class``
ablation with two arms, the multi-modal experiment. Needs the offline Omniglot archives."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Collection
from functools import cache
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
    "studies/paper/results/checks",  # the committed budget check, a dependency of the reports
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


def repro_parallel(
    repo: Path,
    env: dict,
    log_dir: Path,
    *,
    jobs: int = 2,
    unit: Callable[[str], str] = str,
    leave: Collection[str] = (),
) -> dict[str, float]:
    """``dvc repro`` of ``repo``'s pipeline but the stages in ``leave`` (which nothing else may
    depend on), ``jobs`` DVC processes at a time. The stages of one ``unit(stage)`` (default:
    each stage alone) are run by one ``dvc repro --single-item <stage>...`` in pipeline order,
    started once every stage they depend on outside the unit (``dvc dag``) is done: first the
    unit with the longest chain of units after it, then the one of most stages. Returns the
    seconds of the DVC process that ran each stage (``log_dir``: each unit's output,
    ``timeline.tsv``); raises with a failed unit's output once those still running have ended.

    DVC lets two processes run stages that share no output: each holds read locks on its
    stage's dependencies and write locks on its outputs (``.dvc/tmp/rwlock``) while the command
    runs, and takes the repository lock only around its bookkeeping (``--wait-for-lock``: wait
    for it instead of failing). A plain ``dvc repro`` afterwards runs ``leave`` and finds every
    other stage unchanged if each was recorded as a serial ``dvc repro`` records it."""
    dot = dvc(repo, env, "dag", "--dot").stdout
    order = re.findall(r'^"([^"]+)";$', dot, flags=re.M)
    upstream: dict[str, set[str]] = {s: set() for s in order}
    for a, b in re.findall(r'^"([^"]+)" -> "([^"]+)";$', dot, flags=re.M):
        upstream[b].add(a)
    assert order and set().union(*upstream.values()) <= set(order), dot
    assert set(leave) <= set(order), (leave, order)
    stages: dict[str, list[str]] = {}  # unit -> its stages, each after those it depends on
    placed: set[str] = set(leave)
    while len(placed) < len(order):
        ready = [s for s in order if s not in placed and upstream[s] <= placed]
        assert ready, f"a cycle among {sorted(set(order) - placed)}"
        assert not upstream[ready[0]] & set(leave), f"{ready[0]} depends on a stage left to run"
        stages.setdefault(unit(ready[0]), []).append(ready[0])
        placed.add(ready[0])
    of = {s: u for u, members in stages.items() for s in members}
    needs = {u: {of[d] for s in ss for d in upstream[s]} - {u} for u, ss in stages.items()}

    @cache
    def chain(u: str) -> int:  # the units on the longest path from ``u`` to the end
        return 1 + max((chain(v) for v in stages if u in needs[v]), default=0)

    log_dir.mkdir(parents=True, exist_ok=True)
    dvc_bin = str(Path(sys.executable).parent / "dvc")
    running: dict[str, tuple[subprocess.Popen, float]] = {}
    done: dict[str, float] = {}
    timeline = []  # (unit, start, end): seconds since the first start
    failed: list[str] = []
    t0 = time.perf_counter()
    try:
        while len(done) < len(stages) and not (failed and not running):
            ready = [
                u for u in stages if u not in done and u not in running and needs[u] <= done.keys()
            ]
            ready.sort(key=lambda u: (chain(u), len(stages[u])), reverse=True)
            for u in ready[: 0 if failed else jobs - len(running)]:
                with open(log_dir / f"{u}.log", "w") as log:
                    proc = subprocess.Popen(
                        [dvc_bin, "--wait-for-lock", "repro", "--single-item", *stages[u]],
                        cwd=repo,
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                running[u] = proc, time.perf_counter() - t0
            assert running, (
                f"no unit can start: {sorted(set(stages) - set(done))} wait on each other"
            )
            time.sleep(0.1)
            for u, (proc, start) in list(running.items()):
                if proc.poll() is not None:
                    del running[u]
                    timeline.append((u, start, time.perf_counter() - t0))
                    done[u] = timeline[-1][2] - start
                    if proc.returncode:
                        failed.append(u)
    finally:  # interrupted: no DVC left running (its stage's kernel dies with it)
        for proc, _ in running.values():
            proc.kill()
            proc.wait()
    (log_dir / "timeline.tsv").write_text(
        "".join(f"{u}\t{a:.1f}\t{b:.1f}\t{' '.join(stages[u])}\n" for u, a, b in timeline)
    )
    if failed:
        logs = "\n".join(f"{u}:\n{(log_dir / f'{u}.log').read_text()[-4000:]}" for u in failed)
        raise AssertionError(f"dvc repro --single-item failed: {', '.join(failed)}\n{logs}")
    return {s: done[u] for u, members in stages.items() for s in members}


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
    # the paper-grade study of the copy is its tiny study (not every loss): check_params and
    # the code fingerprints cover the paper study's losses too
    paper = params["profiles"]["paper"]
    paper.update(
        losses=list(params["study"]["losses"]), ablations=list(params["study"]["ablations"])
    )
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
