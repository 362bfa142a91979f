"""The paper-grade study: every loss on several seeds, every ablation arm on several seeds, each
run's compact results committed as it finishes (``studies/paper/dvc.yaml``, ``make paper``).

The default pipeline (``dvc.yaml``) trains ``study.losses`` on ``study.seeds`` and keeps run
folders in ``work/``; this one trains a profile's losses and ablations
(``profiles.<profile>.losses`` on ``profiles.<profile>.seeds``, every arm of
``profiles.<profile>.ablations`` on ``profiles.<profile>.ablation_seeds``) and keeps, per run,
the compact folder of :mod:`dmlstudy.analysis.compact` under ``studies/paper/results/runs/`` —
committed to git (outside ``results/``, which the default pipeline's report stage depends on
whole: DVC would make ``dvc repro`` run this study), so that the tables and tests are
recomputed in any clone without retraining, and so that an interrupted study resumes in a fresh
clone: a unit whose compact folder holds the run asked for (same settings, code and data
fingerprints) is not trained again.

Layout (:func:`main_dir`, :func:`arm_dir`)::

    studies/paper/results/runs/<profile>/<dataset>/<loss>/seed<k>/                   a main run
    studies/paper/results/runs/<profile>/<dataset>/ablations/<name>/seed<k>/<arm>/   an ablation arm

One DVC stage per unit (a loss and seed; an ablation and seed, all its arms)::

    python -m dmlstudy.execution.paper_study train params.yaml --profile paper --dataset omniglot \\
        --loss arcface --seed 3 --prepared-dir work/prepared/omniglot
    python -m dmlstudy.execution.paper_study report params.yaml --profile paper --dataset omniglot

``report`` writes the comparison tables and findings below ``studies/paper/results/<dataset>/``
from the compact folders alone (:mod:`dmlstudy.reports.paper_report`; the ranking-transfer
check with ``--transfer wide64``). ``run`` (``make paper``) trains the out-of-date stages side by
side and lets ``dvc repro`` record each as it ends (:func:`run_study`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dmlstudy.config import StudyConfig, load_config
from dmlstudy.study.paper import (
    DVCFILE,
    RESULTS_ROOT,
    RUNS_ROOT,
    main_seeds,
    stage_order,
    train_units,
    units,
)

#: what a stage's commit holds besides the stage's own compact folder: the two locks
LOCKS = ["studies/paper/dvc.lock", "dvc.lock"]
#: each stage's output when stages run side by side (:func:`run_parallel`)
LOG_ROOT = RUNS_ROOT / "logs"


def commit_paths(root: Path, paths: list[str], message: str) -> None:
    """``git commit`` of ``paths`` (only they: other stages may be writing theirs), if changed."""
    subprocess.run(["git", "add", "--", *paths], cwd=root, check=True)
    staged = subprocess.run(["git", "diff", "--cached", "--quiet", "--", *paths], cwd=root)
    if staged.returncode:
        subprocess.run(["git", "commit", "-q", "-m", message, "--", *paths], cwd=root, check=True)


def run_serial(root: Path, stages: list[str], *, commit: bool) -> int:
    """``dvc repro`` each out-of-date stage of ``stages`` in turn (DVC decides what is out of
    date; upstream stages of the default pipeline come along), and with ``commit`` a git commit
    of its results and the locks after each."""
    from dmlstudy.execution.fanout import dvc, out_of_date

    for i, stage in enumerate(stages):
        if not out_of_date(root, [stage]):
            continue
        print(f"[{i + 1}/{len(stages)}] {stage}", flush=True)
        if dvc(root, "repro", stage).returncode:
            print(f"{stage} failed; fix it and run the same command again", flush=True)
            return 1
        if commit:
            commit_paths(
                root, ["studies/paper/results", *LOCKS], f"paper study: {stage_name(stage)}"
            )
    return 0


def stage_name(stage: str) -> str:
    """A stage's name in its dvc file, from its target.

    >>> stage_name("studies/paper/dvc.yaml:main@omniglot-arcface-3")
    'main@omniglot-arcface-3'
    """
    return stage.split(":", 1)[1]


@dataclass(frozen=True)
class StageCall:
    """A training stage as DVC resolves it: its command, working directory and outputs."""

    cmd: str
    wdir: Path
    outs: list[str]


def read_stages(root: Path) -> tuple[dict[str, StageCall], list[str]]:
    """The study's stages (``{target: StageCall}``) and the stages of other dvc files upstream
    of them (the default pipeline's check_params, fingerprint, prepare@...)."""
    from dmlstudy.execution.fanout import select_stages, stage_target

    def call(s: Any) -> StageCall:
        outs = [Path(os.path.relpath(o.fs_path, root)).as_posix() for o in s.outs]
        return StageCall(s.cmd, Path(s.wdir), outs)

    return select_stages(root, lambda s: stage_target(root, s).startswith(f"{DVCFILE}:"), call)


def run_stage_command(cmd: str, wdir: str, log: str) -> int:
    """A dask task: the stage's own command, as ``dvc repro`` would run it (it trains the
    stage's runs and writes their compact folders); its output goes to ``log``."""
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as f:
        return subprocess.run(
            cmd, shell=True, cwd=wdir, stdout=f, stderr=subprocess.STDOUT
        ).returncode


def run_parallel(root: Path, stages: list[str], *, commit: bool, workers: int) -> int:
    """The training stages of ``stages`` that are out of date, trained ``workers`` at a time on a
    dask LocalCluster (one GPU each where there are GPUs) in ``stages``' order; as each
    ends, ``dvc repro`` records it (its compact folders are current: it trains nothing) and,
    with ``commit``, its compact folder and the locks are committed; a free worker takes the
    next stage in the study's order. Then the rest (the report) serially. DVC runs one stage
    at a time (iterative/dvc#5795); this runs their commands side by side and lets DVC
    record them, as :mod:`dmlstudy.execution.fanout` does for the default pipeline. A failed
    stage is reported at the end; the others are recorded."""
    from distributed import as_completed

    from dmlstudy.execution.fanout import dvc, out_of_date
    from dmlstudy.execution.fanout_cluster import open_client
    from dmlstudy.training.devices import visible_gpus

    calls, upstream = read_stages(root)
    if upstream and (rc := dvc(root, "repro", *upstream).returncode):
        return rc
    training = [s for s in stages if not stage_name(s).startswith("report@")]
    stale = out_of_date(root, training)
    print(
        f"{len(stale)} of {len(training)} training stages out of date; {workers} workers",
        flush=True,
    )
    failed: list[str] = []
    if stale:
        with open_client(workers, None, visible_gpus()) as client:
            # one stage per free worker, the next as one ends: dask would hand each worker its
            # share of all of them at once, and a worker busy with a long run would hold back
            # stages that come early in the study's order while the other runs later ones
            queue, running = iter(stale), as_completed()
            futures: dict[object, str] = {}

            def submit_next() -> None:
                if (s := next(queue, None)) is not None:
                    log = str(root / LOG_ROOT / f"{stage_name(s)}.log")
                    fut = client.submit(  # type: ignore[attr-defined]
                        run_stage_command, calls[s].cmd, str(root / calls[s].wdir), log,
                        key=f"{stage_name(s)} {uuid.uuid4().hex}",
                    )  # fmt: skip
                    futures[fut] = s
                    running.add(fut)

            for _ in range(workers):
                submit_next()
            for n, fut in enumerate(running, 1):
                s = futures[fut]
                submit_next()
                if fut.status != "finished":  # the task itself failed (its worker died...)
                    failed.append(s)
                    print(f"[{n}/{len(stale)}] {s} FAILED: {fut.exception()!r}", flush=True)
                    continue
                if fut.result() or dvc(root, "repro", "--single-item", s).returncode:
                    failed.append(s)
                    log = LOG_ROOT / f"{stage_name(s)}.log"
                    print(f"[{n}/{len(stale)}] {s} FAILED (its output: {log})", flush=True)
                    continue
                print(f"[{n}/{len(stale)}] {s} done", flush=True)
                if commit:
                    commit_paths(root, [*calls[s].outs, *LOCKS], f"paper study: {stage_name(s)}")
    if failed:
        names = ", ".join(map(stage_name, failed))
        print(
            f"{len(failed)} stage(s) failed: {names}; the others are recorded. Fix the cause "
            "and run the same command again.",
            flush=True,
        )
        return 1
    return run_serial(root, [s for s in stages if s not in training], commit=commit)


def run_threads(config: StudyConfig) -> int | None:
    """The CPU threads of one of the study's runs (``train.cpu_threads`` under the paper
    profile; None: torch's default, every core)."""
    paper = config.for_profile("paper")
    ds, loss = paper.study.datasets[0], paper.study.losses[0]
    seed = main_seeds(config, "paper")[0]
    unit = units(config, "paper", ds, seed, prepared_dir=f"work/prepared/{ds}", loss=loss)[0]
    return unit.settings.cpu_threads


def default_workers(config: StudyConfig) -> int:
    """How many stages ``run`` trains side by side unless told: one per visible GPU, else as
    many as the cores hold runs of :func:`run_threads` (unset: one at a time)."""
    from dmlstudy.training.devices import fitting_workers

    return fitting_workers(run_threads(config))


def without(stages: list[str], skip: list[str]) -> list[str]:
    """``stages`` less those whose name contains one of ``skip`` (and then the report, which
    reads every stage), e.g. the losses whose values a campaign is still tuning.

    >>> s = ["d:main@o-arcface-0", "d:ablation@o-direction_gamma-0", "d:report@o"]
    >>> without(s, ["direction"])
    ['d:main@o-arcface-0']
    >>> without(s, [])
    ['d:main@o-arcface-0', 'd:ablation@o-direction_gamma-0', 'd:report@o']
    """
    if not skip:
        return stages
    return [
        s for s in stages
        if not stage_name(s).startswith("report@") and not any(k in stage_name(s) for k in skip)
    ]  # fmt: skip


def run_study(
    root: Path, config: StudyConfig, *, commit: bool, workers: int = 1, skip: list[str] = ()
) -> int:
    """The study's out-of-date stages (:func:`stage_order`, less those named by ``skip``:
    :func:`without`): one ``dvc repro`` at a time, or the training stages ``workers`` at a time
    (:func:`run_parallel`); with ``commit`` the study's state is in git as it goes."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    every = stage_order(config)
    stages = without(every, list(skip))
    if skip:
        left = len(every) - len(stages)
        print(f"left out {left} stages: those naming {', '.join(skip)}, and the report", flush=True)
    if workers == 1:
        return run_serial(root, stages, commit=commit)
    threads = run_threads(config) or os.cpu_count() or 1
    if workers * threads > (os.cpu_count() or 1):
        print(
            f"note: {workers} stages x {threads} CPU threads on {os.cpu_count()} cores (on a CPU "
            "set profiles.paper.train.cpu_threads so that they fit)",
            flush=True,
        )
    return run_parallel(root, stages, commit=commit, workers=workers)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dmlstudy.execution.paper_study")
    sub = ap.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train one stage's runs and write their compact folders")
    r = sub.add_parser("report", help="tables and findings from the compact folders")
    run = sub.add_parser(
        "run",
        help="train the study's out-of-date stages, side by side, and record them (make paper)",
    )
    run.add_argument("params")
    run.add_argument("--commit", action="store_true", help="git commit after every stage")
    run.add_argument(
        "--workers", type=int,
        help="training stages side by side (dask workers, one GPU each where there are GPUs; "
        "default: one per GPU, else as many as the cores hold runs of train.cpu_threads)",
    )  # fmt: skip
    run.add_argument(
        "--skip", action="append", default=[], metavar="NAME",
        help="leave out the stages whose name contains NAME (repeatable), e.g. a loss whose "
        "values the campaign is still tuning; the report waits for a run without it",
    )  # fmt: skip
    for p in (t, r):
        p.add_argument("params")
        p.add_argument("--profile", default="paper")
        p.add_argument("--dataset", default="omniglot")
        p.add_argument("--results", default=str(RESULTS_ROOT))
    t.add_argument("--seed", type=int, required=True)
    t.add_argument("--loss")
    t.add_argument("--ablation")
    t.add_argument("--prepared-dir", required=True)
    t.add_argument("--runs", default=str(RUNS_ROOT))
    r.add_argument("--transfer", help="a profile whose one-seed ranking is compared (wide64)")
    a = ap.parse_args(argv)
    config = load_config(a.params)
    if a.command == "run":
        workers = a.workers if a.workers is not None else default_workers(config)
        return run_study(Path.cwd(), config, commit=a.commit, workers=workers, skip=a.skip)
    if a.command == "train":
        todo = units(
            config,
            a.profile,
            a.dataset,
            a.seed,
            prepared_dir=a.prepared_dir,
            loss=a.loss,
            ablation=a.ablation,
            results=Path(a.results) / "runs",
            runs=Path(a.runs),
        )
        train_units(todo)
        return 0
    from dmlstudy.reports.paper_report import write_report

    out = write_report(config, a.profile, a.dataset, Path(a.results), transfer=a.transfer)
    print(json.dumps({"written": [str(p) for p in out]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
