"""What the paper-grade study runs (``studies/paper/dvc.yaml``): its seeds, its units (a loss on
a seed; an ablation's arms on a seed), where each unit's run folder and committed compact folder
are, and the order its stages are taken in. Running it is :mod:`dmlstudy.execution.paper_study`;
its report, :mod:`dmlstudy.reports.paper_report`.

>>> main_dir(Path("studies/paper/results/runs"), "paper", "omniglot", "arcface", 3).as_posix()
'studies/paper/results/runs/paper/omniglot/arcface/seed3'
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dmlstudy.analysis.compact import export, is_current
from dmlstudy.config import StudyConfig
from dmlstudy.study.runs import ablation_variants, train_settings
from dmlstudy.training.settings import TrainSettings

RESULTS_ROOT = Path("studies/paper/results")  # compact folders in runs/, the report in <dataset>/
RUNS_ROOT = Path("work/paper")  # run folders (checkpoints, embeddings): never committed


def _seeds(config: StudyConfig, profile: str, key: str) -> list[int]:
    """``profiles.<profile>.<key>`` (refused when empty: the study would train nothing)."""
    seeds = getattr(config.profiles[profile], key)
    if not seeds:
        raise ValueError(f"profiles.{profile}.{key} is empty: give the seeds this study trains")
    return list(seeds)


def main_seeds(config: StudyConfig, profile: str) -> list[int]:
    """The main comparison's seeds: ``profiles.<profile>.seeds``."""
    return _seeds(config, profile, "seeds")


def ablation_seeds(config: StudyConfig, profile: str) -> list[int]:
    """Every ablation arm's seeds: ``profiles.<profile>.ablation_seeds``."""
    return _seeds(config, profile, "ablation_seeds")


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
    """The runs of one stage: ``loss`` on ``seed``, or every arm of ``ablation`` on ``seed``,
    trained under ``profile``'s settings (``wide64`` for the transfer check); which losses and
    ablations the study has is ``profiles.paper``'s whatever the profile."""
    if (loss is None) == (ablation is None):
        raise ValueError("give one of --loss and --ablation")
    study = config.for_profile("paper").study
    config = config.for_profile(profile)
    if loss is not None:
        if loss not in study.losses:
            raise ValueError(f"{loss!r} is not in profiles.paper.losses: {', '.join(study.losses)}")
        if seed not in main_seeds(config, profile):
            raise ValueError(f"seed {seed} is not in profiles.{profile}.seeds")
        out = main_dir(runs, profile, dataset, loss, seed)
        s = train_settings(config, dataset, loss, seed, prepared_dir=prepared_dir, out_dir=out)
        dest = main_dir(results, profile, dataset, loss, seed)
        return [Unit(f"{dataset}/{loss}/seed{seed}", s, dest)]
    if ablation not in study.ablations:
        raise ValueError(f"{ablation!r} is not in profiles.paper.ablations: {study.ablations}")
    if seed not in ablation_seeds(config, profile):
        raise ValueError(f"seed {seed} is not in profiles.{profile}.ablation_seeds")
    out = []
    for v in ablation_variants(config, ablation):
        s = v.settings(
            config,
            dataset,
            seed,
            prepared_dir=prepared_dir,
            out_dir=arm_dir(runs, profile, dataset, ablation, seed, v.label),
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
    then the ablation arms seed by seed, the transfer runs, the report. Its losses and ablations
    are ``profiles.paper``'s (:meth:`~dmlstudy.config.StudyConfig.for_profile`)."""
    config = config.for_profile("paper")
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
