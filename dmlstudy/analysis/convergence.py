"""Did every run train to its plateau? Per-epoch validation MAP@R of each run, its selected (best)
epoch, the epochs after which the plateau rule dropped the lr, and whether it stopped on its own.

Read from each run's ``metrics.json``: ``history`` (one record per epoch; a validation round has
``val`` and the plateau rule's ``decision``: improve / wait / drop / stop), ``best_epoch``,
``epochs_run`` and ``converged`` (:mod:`dmlstudy.training.stopping`). Epochs are 1-based here, as
in every report.

>>> h = [{"epoch": 0, "val": {"map@r": .1}, "decision": "improve"},
...      {"epoch": 1, "val": {"map@r": .1}, "decision": "drop"},
...      {"epoch": 2, "val": {"map@r": .2}, "decision": "improve"},
...      {"epoch": 3, "val": {"map@r": .2}, "decision": "stop"}]
>>> run_marks({"history": h, "best_epoch": 2, "epochs_run": 4, "converged": True})
{'best_epoch': 3, 'lr_drops': [2], 'epochs_run': 4, 'converged': True}
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from dmlstudy.training.outputs import load_run
from dmlstudy.training.rundir import run_path

SELECTED_ON = "map@r"


def run_marks(metrics: dict[str, Any]) -> dict[str, Any]:
    """Best epoch, the epochs after which the lr dropped (it applies from the next one),
    epochs run and the converged flag of one run (1-based epochs)."""
    history = metrics.get("history", [])
    return {
        "best_epoch": int(metrics["best_epoch"]) + 1,
        "lr_drops": [r["epoch"] + 1 for r in history if r.get("decision") == "drop"],
        "epochs_run": int(metrics.get("epochs_run") or len(history)),
        "converged": bool(metrics.get("converged", False)),
    }


def load_convergence(
    runs_dir: str | Path, losses: Sequence[str], seeds: Sequence[int]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(curves, marks) of every run: curves has ``loss, seed, epoch, val_map@r, decision`` for
    each validation round (fractions); marks one row per run (:func:`run_marks`)."""
    curves, marks = [], []
    for loss in losses:
        for seed in seeds:
            m = load_run(run_path(runs_dir, loss, seed))
            marks.append({"loss": loss, "seed": seed, **run_marks(m)})
            curves += [
                {
                    "loss": loss,
                    "seed": seed,
                    "epoch": r["epoch"] + 1,
                    f"val_{SELECTED_ON}": r["val"][SELECTED_ON],
                    "decision": r.get("decision", ""),
                }
                for r in m.get("history", [])
                if "val" in r
            ]
    return pd.DataFrame(curves), pd.DataFrame(marks)


def convergence_table(marks: pd.DataFrame) -> pd.DataFrame:
    """One row per run for the report: best epoch, lr drop(s), epochs run, converged."""
    out = pd.DataFrame(
        {
            "loss": marks["loss"],
            "seed": marks["seed"],
            "selected epoch (best val MAP@R)": marks["best_epoch"],
            "lr dropped after epoch": [
                ", ".join(map(str, d)) if d else "no drop" for d in marks["lr_drops"]
            ],
            "epochs run": marks["epochs_run"],
            "converged": [
                "yes" if c else "not converged (epoch cap, or stopped still rising)"
                for c in marks["converged"]
            ],
        }
    )
    return out.set_index(["loss", "seed"])


def unconverged(marks: pd.DataFrame) -> list[str]:
    """``loss`` (or ``loss seed N`` with several seeds) of every run that did not converge."""
    several = marks["seed"].nunique() > 1
    bad = marks[~marks["converged"].astype(bool)]
    return [f"{r.loss} seed {r.seed}" if several else str(r.loss) for r in bad.itertuples()]


def convergence_sentence(marks: pd.DataFrame) -> str:
    """One sentence: did every run stop at its validation plateau?

    >>> m = pd.DataFrame({"loss": ["a", "b"], "seed": [0, 0], "converged": [True, False]})
    >>> convergence_sentence(m)
    '1 of 2 runs did not converge (hit the epoch cap, or stopped with val MAP@R still rising): b.'
    """
    bad = unconverged(marks)
    if not bad:
        return (
            f"All {len(marks)} runs converged: each stopped at its validation plateau, after its "
            "lr drops, and was evaluated at its best validation epoch."
        )
    return (
        f"{len(bad)} of {len(marks)} runs did not converge (hit the epoch cap, or stopped with "
        f"val MAP@R still rising): {', '.join(bad)}."
    )
