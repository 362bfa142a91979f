"""Ablation studies: train every arm of ``ablations.<name>`` for every seed, then conclude.

Each arm is one :class:`~dmlstudy.pipeline.runs.Variant` (a named variant or a sweep value)
trained under the same budget, to the same plateau rule as the main runs; the conclusion compares
every arm with the ablation's ``reference`` arm (paired over test classes, or over >= 3 seeds;
Holm-adjusted; :mod:`dmlstudy.pipeline.compare`) and says in one sentence what it found.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from dmlstudy.config import StudyConfig
from dmlstudy.pipeline.compare import compare, conclusion
from dmlstudy.pipeline.runs import ablation_variants, run_path, train_settings
from dmlstudy.training.rundir import retire_other_runs
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
            s = train_settings(
                config,
                dataset,
                v.loss,
                seed,
                prepared_dir=prepared_dir,
                out_dir=run_path(runs_dir, v.label, seed),
                loss_params=v.loss_params,
                budget=v.budget,
                extra=v.train,
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
