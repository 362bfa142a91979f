"""Ablation studies: train every arm of ``ablations.<name>`` for every seed, then conclude.

Each arm is one :class:`~dmlstudy.study.runs.Variant` (a named variant or a sweep value)
trained under the same budget, to the same plateau rule as the main runs; the conclusion compares
every arm with the ablation's ``reference`` arm (paired over test classes, or over >= 3 seeds;
Holm-adjusted; :mod:`dmlstudy.analysis.compare`) and says in one sentence what it found.

An arm changes only what it names: both phases of a two-phase loss (``check_both_phases``), the
reference's own tuned settings (``train_from``: direction's γ = 0 arm is the tuned triplet run),
and an arm whose loss changes shape (DAAL's point proxy) declares its own search space, which the
tuning campaign tunes as a target of its own (:func:`tuning_targets`); :func:`tuning_notes` says
on the page where an arm still runs with values tuned for another shape.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from dmlstudy.analysis.compare import compare, conclusion
from dmlstudy.config import StudyConfig
from dmlstudy.study.runs import ablation_variants, train_settings
from dmlstudy.training.rundir import retire_other_runs, run_path
from dmlstudy.training.settings import TrainSettings

#: Trains a list of runs (resuming or reusing finished ones) and returns their metrics, in order.
Launcher = Callable[[Sequence[TrainSettings]], list[dict[str, Any]]]


def train_all(settings: Sequence[TrainSettings]) -> list[dict[str, Any]]:
    """The default launcher: one run after the other in this process."""
    from dmlstudy.training import train

    return [train(s) for s in settings]


def plan(
    config: StudyConfig,
    dataset: str,
    ablation: str,
    *,
    prepared_dir: str | Path,
    runs_dir: str | Path,
) -> pd.DataFrame:
    """One row per (arm, seed): ``variant``, ``value``, ``seed`` and its ``settings``."""
    rows = []
    for v in ablation_variants(config, ablation):
        for seed in config.study.seeds:
            s = v.settings(
                config,
                dataset,
                seed,
                prepared_dir=prepared_dir,
                out_dir=run_path(runs_dir, v.label, seed),
            )
            rows.append({"variant": v.label, "value": v.value, "seed": seed, "settings": s})
    return pd.DataFrame(rows)


def run(
    config: StudyConfig,
    dataset: str,
    ablation: str,
    *,
    prepared_dir: str | Path,
    runs_dir: str | Path,
    launcher: Launcher = train_all,
) -> pd.DataFrame:
    """Train every arm and seed; one row per run with its test metrics and convergence facts."""
    todo = plan(config, dataset, ablation, prepared_dir=prepared_dir, runs_dir=runs_dir)
    # runs_dir persists between runs of this stage: runs of arms no longer asked for move to
    # a sibling _retired/ folder (and back when asked again), never deleted
    retire_other_runs(runs_dir, list(todo["settings"]))
    results = launcher(list(todo["settings"]))
    rows = []
    for (_, r), m in zip(todo.iterrows(), results):
        rows.append(
            {
                "variant": r["variant"],
                "value": r["value"],
                "seed": r["seed"],
                **m["test"],
                "best_epoch": m["best_epoch"],
                "epochs_run": m.get("epochs_run"),
                "converged": m.get("converged"),
                "train_seconds": m["train_seconds"],
            }
        )
    return pd.DataFrame(rows)


def conclusions(
    config: StudyConfig,
    ablation: str,
    runs_dir: str | Path,
    metrics: Sequence[str] = ("recall@1", "map@r"),
) -> tuple[pd.DataFrame, list[str]]:
    """Every arm against the reference arm: the ``compare`` table and one sentence per arm."""
    arms = [v.label for v in ablation_variants(config, ablation)]
    reference = config.ablations[ablation].reference or arms[0]
    groups = {a: [run_path(runs_dir, a, s) for s in config.study.seeds] for a in arms}
    table = compare(groups, reference=reference, metrics=metrics)
    sentences = [conclusion(r) for _, r in table.iterrows() if r["method"] != reference]
    return table, sentences


@dataclass(frozen=True)
class TuningTarget:
    """An ablation arm that the tuning campaign tunes as a target of its own (its loss changes
    shape): trials of ``loss`` with the arm's ``loss_params`` fixed, over ``space``
    (``tuning.space`` format: loss keywords and ``train.<field>``); the winner on a dataset goes
    to ``<writes_to>.<dataset>``."""

    name: str  # "<ablation>/<arm>": its name in the campaign (study.campaign.subject)
    loss: str
    loss_params: dict[str, Any]
    space: dict[str, Any]
    writes_to: str  # "ablations.<name>.variants.<arm>.per_dataset"
    space_at: str  # "ablations.<name>.variants.<arm>.space": where params.yaml declares the space


def tuning_targets(config: StudyConfig) -> list[TuningTarget]:
    """The arms of ``study.ablations`` with their own search space."""
    return [
        TuningTarget(
            f"{name}/{v.label}",
            v.loss,
            dict(v.loss_params),
            dict(v.space),
            f"{v.where}.per_dataset",
            f"{v.where}.space",
        )
        for name in config.study.ablations
        for v in ablation_variants(config, name)
        if v.space
    ]


def tuning_notes(config: StudyConfig, ablation: str, dataset: str) -> list[str]:
    """Computed sentences on where the arms' tuned values come from: an arm with its own search
    space that the campaign has not tuned on ``dataset`` yet (it runs with the values tuned for
    the loss's usual shape), and whose tuned settings every arm trains with (``train_from``)."""
    abl, out = config.ablations[ablation], []
    for v in ablation_variants(config, ablation):
        if v.space and v.own(dataset) is None:
            out.append(
                f"Arm {v.label} changes the shape of {v.loss} but runs with the values tuned for "
                f"{v.loss} itself (losses.{v.loss}.per_dataset.{dataset}): the campaign has not "
                f"tuned it on {dataset} yet ({v.where}.per_dataset.{dataset}), so its difference "
                "from the reference mixes what it removes with values tuned for another shape."
            )
        elif v.space:
            out.append(f"Arm {v.label} runs with its own tuned values ({v.where}.per_dataset).")
    if abl.train_from:
        ref = abl.reference or abl.arm_labels()[0]
        same = reference_is_main_run(config, ablation, dataset)
        out.append(
            f"Every arm trains with {abl.train_from}'s tuned settings on {dataset} "
            f"(ablations.{ablation}.train_from) on the tuned {abl.train_from} values: the "
            f"reference arm {ref} "
            + ("is" if same else "is NOT")
            + f" the main {abl.train_from} run (same training settings and loss values)."
        )
    return out


#: Settings that name a run rather than what it trains (compared away by reference_is_main_run).
_RUN_NAMING = ("out_dir", "loss", "loss_params")


def reference_is_main_run(config: StudyConfig, ablation: str, dataset: str) -> bool:
    """Whether the reference arm of an ablation with ``train_from: <base>`` trains as the main
    run of ``<base>`` on ``dataset``: the same TrainSettings (paths and loss name aside) and, as
    its ``base_params``, the base's hyper-parameters of that run (constructor defaults filled)."""
    from dmlstudy.losses import loss_hyperparameters

    abl = config.ablations[ablation]
    ref = abl.reference or abl.arm_labels()[0]
    arm = next(v for v in ablation_variants(config, ablation) if v.label == ref)
    paths = {"prepared_dir": ".", "out_dir": "."}
    mine = arm.settings(config, dataset, 0, **paths)
    main = train_settings(config, dataset, abl.train_from, 0, **paths)
    defaults = loss_hyperparameters(abl.train_from)
    base = {**defaults, **(mine.loss_params.get("base_params") or {})}
    return (
        mine.model_dump(exclude=set(_RUN_NAMING)) == main.model_dump(exclude=set(_RUN_NAMING))
        and mine.loss_params.get("base") == abl.train_from
        and base == {**defaults, **main.loss_params}
    )
