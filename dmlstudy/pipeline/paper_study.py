"""The paper-grade study: every loss on several seeds, every ablation arm on several seeds, each
run's compact results committed as it finishes (``studies/paper/dvc.yaml``, ``make paper``).

The default pipeline (``dvc.yaml``) trains ``study.seeds`` and keeps run folders in ``work/``;
this one trains the seeds of a profile (``profiles.<profile>.seeds`` for the main comparison,
``profiles.<profile>.ablation_seeds`` for every arm of ``study.ablations``) and keeps, per run,
the compact folder of :mod:`.compact` under ``results/paper/runs/`` — committed to
git, so that the tables and tests are recomputed in any clone without retraining, and so that
an interrupted study resumes in a fresh clone: a unit whose compact folder holds the run asked
for (same settings, code and data fingerprints) is not trained again.

Layout (:func:`main_dir`, :func:`arm_dir`)::

    results/paper/runs/<profile>/<dataset>/<loss>/seed<k>/                   a main run
    results/paper/runs/<profile>/<dataset>/ablations/<name>/seed<k>/<arm>/   an ablation arm

One DVC stage per unit (a loss and seed; an ablation and seed, all its arms)::

    python -m dmlstudy.pipeline.paper_study train params.yaml --profile paper --dataset omniglot \\
        --loss arcface --seed 3 --prepared-dir work/prepared/omniglot
    python -m dmlstudy.pipeline.paper_study report params.yaml --profile paper --dataset omniglot

``report`` writes the comparison tables and findings below ``results/paper/<dataset>/`` from the
compact folders alone (:mod:`.paper_report`; the ranking-transfer check with ``--transfer
wide64``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dmlstudy.config import StudyConfig, load_config
from dmlstudy.pipeline.compact import export, is_current
from dmlstudy.pipeline.runs import ablation_variants, train_settings
from dmlstudy.training.settings import TrainSettings

RESULTS_ROOT = Path("results/paper")  # compact folders in runs/, the report in <dataset>/
RUNS_ROOT = Path("work/paper")  # run folders (checkpoints, embeddings): never committed


def with_profile(config: StudyConfig, profile: str) -> StudyConfig:
    """``config`` as ``study.profile: <profile>`` reads it (a profile params.yaml must have)."""
    if profile not in config.profiles:
        raise ValueError(
            f"params.yaml has no profiles.{profile}; valid choices: {', '.join(config.profiles)}"
        )
    study = config.study.model_copy(update={"profile": profile})
    return config.model_copy(update={"study": study})


def main_seeds(config: StudyConfig, profile: str) -> list[int]:
    """``profiles.<profile>.seeds`` (refused when empty: the study would train nothing)."""
    seeds = config.profiles[profile].seeds
    if not seeds:
        raise ValueError(f"profiles.{profile}.seeds is empty: give the seeds this study trains")
    return list(seeds)


def ablation_seeds(config: StudyConfig, profile: str) -> list[int]:
    seeds = config.profiles[profile].ablation_seeds
    if not seeds:
        raise ValueError(f"profiles.{profile}.ablation_seeds is empty: give the arms' seeds")
    return list(seeds)


def main_dir(root: Path, profile: str, dataset: str, loss: str, seed: int) -> Path:
    return root / profile / dataset / loss / f"seed{seed}"


def arm_dir(root: Path, profile: str, dataset: str, ablation: str, seed: int, arm: str) -> Path:
    return root / profile / dataset / "ablations" / ablation / f"seed{seed}" / arm


@dataclass(frozen=True)
class Unit:
    """One run of a stage: its settings (run folder under ``work/paper``), its compact folder,
    and ``same_as``: another compact folder that may hold the same run (an ablation arm that
    trains as its loss's main run: the reference arm of DAAL or RSW, the protocol's
    embedding_dim or m_per_class), copied rather than trained again when it is current."""

    name: str
    settings: TrainSettings
    compact: Path
    same_as: Path | None = None


def units(
    config: StudyConfig,
    profile: str,
    dataset: str,
    seed: int,
    *,
    prepared_dir: str | Path,
    loss: str | None = None,
    ablation: str | None = None,
    results: Path = RESULTS_ROOT / "runs",
    runs: Path = RUNS_ROOT,
) -> list[Unit]:
    """The runs of one stage: ``loss`` on ``seed``, or every arm of ``ablation`` on ``seed``."""
    if (loss is None) == (ablation is None):
        raise ValueError("give one of --loss and --ablation")
    config = with_profile(config, profile)
    if loss is not None:
        if loss not in config.study.losses:
            raise ValueError(f"{loss!r} is not in study.losses: {', '.join(config.study.losses)}")
        if seed not in main_seeds(config, profile):
            raise ValueError(f"seed {seed} is not in profiles.{profile}.seeds")
        out = main_dir(runs, profile, dataset, loss, seed)
        s = train_settings(config, dataset, loss, seed, prepared_dir=prepared_dir, out_dir=out)
        dest = main_dir(results, profile, dataset, loss, seed)
        return [Unit(f"{dataset}/{loss}/seed{seed}", s, dest)]
    if ablation not in config.study.ablations:
        raise ValueError(f"{ablation!r} is not in study.ablations: {config.study.ablations}")
    if seed not in ablation_seeds(config, profile):
        raise ValueError(f"seed {seed} is not in profiles.{profile}.ablation_seeds")
    out = []
    for v in ablation_variants(config, ablation):
        s = train_settings(
            config,
            dataset,
            v.loss,
            seed,
            prepared_dir=prepared_dir,
            out_dir=arm_dir(runs, profile, dataset, ablation, seed, v.label),
            **v.settings_kwargs(dataset),
        )
        dest = arm_dir(results, profile, dataset, ablation, seed, v.label)
        main = main_dir(results, profile, dataset, v.loss, seed)
        out.append(Unit(f"{dataset}/{ablation}/{v.label}/seed{seed}", s, dest, main))
    return out


def train_units(todo: Sequence[Unit]) -> list[str]:
    """Train each unit whose compact folder is not current and export it; returns what ran."""
    from dmlstudy.training import train
    from dmlstudy.training.fingerprint import run_inputs

    ran = []
    for u in todo:
        inputs = run_inputs(u.settings.prepared_dir, u.settings.loss, u.settings.loss_params)
        if is_current(u.compact, u.settings, inputs):
            print(f"{u.name}: committed compact results are current; not trained", flush=True)
            continue
        if u.same_as is not None and is_current(u.same_as, u.settings, inputs):
            shutil.rmtree(u.compact, ignore_errors=True)
            shutil.copytree(u.same_as, u.compact)
            print(f"{u.name}: the same run as {u.same_as}; copied, not trained", flush=True)
            continue
        train(u.settings)
        export(u.settings.out_dir, u.compact)
        ran.append(u.name)
        print(f"{u.name}: trained, compact results in {u.compact}", flush=True)
    return ran


DVCFILE = "studies/paper/dvc.yaml"


def stage_order(config: StudyConfig) -> list[str]:
    """The study's stages in the order :func:`run_study` takes them: the main runs seed by seed
    (after each seed every loss has as many seeds: a partial study is still a fair comparison),
    then the ablation arms seed by seed, the transfer runs, the report."""
    d, losses = config.study.datasets, config.study.losses
    out = [
        f"main@{ds}-{loss}-{seed}"
        for seed in main_seeds(config, "paper")
        for ds in d
        for loss in losses
    ]
    if config.study.ablations:
        out += [
            f"ablation@{ds}-{a}-{seed}"
            for seed in ablation_seeds(config, "paper")
            for ds in d
            for a in config.study.ablations
        ]
    out += [
        f"transfer@{ds}-{loss}-{s}"
        for s in main_seeds(config, "wide64")
        for ds in d
        for loss in losses
    ]
    return [f"{DVCFILE}:{name}" for name in out] + [f"{DVCFILE}:report@{ds}" for ds in d]


def run_study(root: Path, config: StudyConfig, *, commit: bool) -> int:
    """``dvc repro`` each out-of-date stage of :func:`stage_order` (DVC decides what is out of
    date; upstream stages of the default pipeline come along), and with ``commit`` a git commit of
    its compact folders and the locks after each: the study's state is in git as it goes."""
    from dmlstudy.pipeline.fanout import dvc, out_of_date

    stages = stage_order(config)
    for i, stage in enumerate(stages):
        if not out_of_date(root, [stage]):
            continue
        print(f"[{i + 1}/{len(stages)}] {stage}", flush=True)
        if dvc(root, "repro", stage).returncode:
            print(f"{stage} failed; fix it and run the same command again", flush=True)
            return 1
        if commit:
            paths = ["results/paper", "studies/paper/dvc.lock", "dvc.lock"]
            subprocess.run(["git", "add", "--", *paths], cwd=root, check=True)
            staged = subprocess.run(["git", "diff", "--cached", "--quiet", "--", *paths], cwd=root)
            if staged.returncode:
                msg = f"paper study: {stage.split(':', 1)[1]}"
                subprocess.run(
                    ["git", "commit", "-q", "-m", msg, "--", *paths], cwd=root, check=True
                )
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dmlstudy.pipeline.paper_study")
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
    from dmlstudy.pipeline.paper_report import write_report

    out = write_report(config, a.profile, a.dataset, Path(a.results), transfer=a.transfer)
    print(json.dumps({"written": [str(p) for p in out]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
