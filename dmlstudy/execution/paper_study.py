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
check with ``--transfer wide64``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from dmlstudy.config import StudyConfig, load_config
from dmlstudy.study.paper import (
    RESULTS_ROOT,
    RUNS_ROOT,
    stage_order,
    train_units,
    units,
)


def run_study(root: Path, config: StudyConfig, *, commit: bool) -> int:
    """``dvc repro`` each out-of-date stage of :func:`stage_order` (DVC decides what is out of
    date; upstream stages of the default pipeline come along), and with ``commit`` a git commit of
    its compact folders and the locks after each: the study's state is in git as it goes."""
    from dmlstudy.execution.fanout import dvc, out_of_date

    stages = stage_order(config)
    for i, stage in enumerate(stages):
        if not out_of_date(root, [stage]):
            continue
        print(f"[{i + 1}/{len(stages)}] {stage}", flush=True)
        if dvc(root, "repro", stage).returncode:
            print(f"{stage} failed; fix it and run the same command again", flush=True)
            return 1
        if commit:
            paths = ["studies/paper/results", "studies/paper/dvc.lock", "dvc.lock"]
            subprocess.run(["git", "add", "--", *paths], cwd=root, check=True)
            staged = subprocess.run(["git", "diff", "--cached", "--quiet", "--", *paths], cwd=root)
            if staged.returncode:
                msg = f"paper study: {stage.split(':', 1)[1]}"
                subprocess.run(
                    ["git", "commit", "-q", "-m", msg, "--", *paths], cwd=root, check=True
                )
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dmlstudy.execution.paper_study")
    sub = ap.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train one stage's runs and write their compact folders")
    r = sub.add_parser("report", help="tables and findings from the compact folders")
    run = sub.add_parser("run", help="dvc repro the study stage by stage (make paper)")
    run.add_argument("params")
    run.add_argument("--commit", action="store_true", help="git commit after every stage")
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
        return run_study(Path.cwd(), config, commit=a.commit)
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
