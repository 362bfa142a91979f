"""The ablation and multi-modal pages: the question each asks, a per-arm table (percent, no empty
cell), and the small files the index reads: ``<stem>.csv`` (one row per run),
``<stem>-comparison.csv`` (:mod:`dmlstudy.analysis.compare` rows) and ``<stem>.json`` (the
question and the computed sentences), all in percent.

>>> cmp = pd.DataFrame({"method": ["a", "b"], "metric": "map@r", "reference": "a",
...     "mean": [.3, .2], "ci_low": [.28, .18], "ci_high": [.32, .22], "diff": [0., -.1],
...     "p_holm": [1., .002], "tied": [True, False]})
>>> runs = pd.DataFrame({"variant": ["a", "b"], "seed": 0, "best_epoch": [3, 4],
...                      "epochs_run": [6, 7], "converged": [True, False]})
>>> arm_table(cmp, runs, "variant").loc["b"].tolist()
['20.0', '[18.0, 22.0]', 'lower (-10.0 points, p = 0.002)', '5/7', 'not converged']
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from dmlstudy.analysis.findings import difference_text
from dmlstudy.analysis.results import LABELS, epochs_for_readers, percent
from dmlstudy.analysis.study_table import BOOTSTRAP, comparison_frame, percent_comparison
from dmlstudy.config import StudyConfig
from dmlstudy.plots import interval_plot
from dmlstudy.plots.comparison import VS_BEST


def ablation_question(config: StudyConfig, name: str) -> str:
    """What ablation ``name`` asks, from its params.yaml section."""
    a = config.ablations[name]
    arms = a.arm_labels()
    reference = a.reference or arms[0]
    if a.sweep:
        what = ", ".join(k.split(".", 1)[1] for k in a.sweep)
        return (
            f"Does {what} matter for {a.loss}? Arms {', '.join(arms)}, each compared with the "
            f"reference arm {reference} on the test classes."
        )
    return (
        f"What does each part of {a.loss} contribute? Arms {', '.join(arms)}, each compared "
        f"with the reference arm {reference} on the test classes."
    )


MULTIMODAL_QUESTION = (
    "Trained on coarse labels only (for Omniglot: alphabets), how much of the fine structure "
    "(characters) inside each coarse class does each loss keep? Each run's epoch is selected on "
    "held-out alphabets (multimodal.train.val_coarse_fraction); fine-label retrieval on the "
    "test alphabets, compared with the best loss, with each run's selected epoch."
)


#: Headers of the multi-modal experiment's other columns.
EXTRA_LABELS = {
    "within_coarse_nmi": "within-coarse NMI",
    "coarse_recall@1": "coarse R@1",
    "coarse_map@r": "coarse MAP@R",
}


def arm_table(
    comparison: pd.DataFrame,
    runs: pd.DataFrame,
    label: str,
    metrics: Sequence[str] = ("map@r",),
    extra: Sequence[str] = (),
    prefix: str = "",
) -> pd.DataFrame:
    """Per method (``comparison`` order, fractions): each of ``metrics`` with its bootstrap CI
    and its difference from the reference, the mean of each ``extra`` run column, the epochs
    (best/run, 1-based) and convergence of its runs; strings in percent. ``prefix`` names the
    compared labels' level (e.g. "fine ")."""
    out: dict[str, dict[str, str]] = {}
    for m in metrics:
        name = prefix + LABELS.get(m, m)
        for _, r in comparison[comparison["metric"] == m].iterrows():
            row = out.setdefault(r["method"], {})
            row[name] = f"{100 * r['mean']:.1f}"
            row[f"{name} ({BOOTSTRAP})"] = f"[{100 * r['ci_low']:.1f}, {100 * r['ci_high']:.1f}]"
            vs = f"{name} vs {r['reference']}"
            if r["method"] == r["reference"]:
                row[vs] = "reference"
            else:
                row[vs] = difference_text(r)
    for method, row in out.items():
        mine = runs[runs[label] == method].sort_values("seed")
        for col in extra:
            row[EXTRA_LABELS.get(col, col)] = f"{100 * mine[col].mean():.1f}"
        row["epochs (best/run)"] = ", ".join(
            f"{b + 1}/{e}" for b, e in zip(mine["best_epoch"], mine["epochs_run"])
        )
        row["converged"] = "yes" if mine["converged"].astype(bool).all() else "not converged"
    table = pd.DataFrame.from_dict(out, orient="index")
    table.index.name = label
    return table


#: Selected epochs this many times apart (latest / earliest), or a rank correlation of fine
#: structure with the selected epoch at or below ``-STOPPING_RHO``, make the multi-modal ranking
#: a matter of stopping time.
STOPPING_RATIO, STOPPING_RHO = 2.0, 0.5


def stopping_time_note(
    runs: pd.DataFrame, comparison: pd.DataFrame, metric: str = "map@r", label: str = "loss"
) -> str:
    """One computed sentence: the selected epochs (1-based, mean over seeds) of the multi-modal
    runs, and whether the fine-structure ranking depends on when each run stopped (fine
    structure fades as coarse training goes on): it does when the latest selected epoch is at
    least ``STOPPING_RATIO`` times the earliest, or when fine ``metric`` falls with the selected
    epoch (Spearman ρ <= -``STOPPING_RHO`` over >= 3 losses).

    >>> runs = pd.DataFrame({"loss": ["a", "b", "c"], "seed": 0, "best_epoch": [0, 4, 8],
    ...                      "fine_map@r": [.3, .2, .1]})
    >>> cmp = pd.DataFrame({"metric": ["map@r"], "reference": ["a"]})
    >>> print(stopping_time_note(runs, cmp))  # doctest: +NORMALIZE_WHITESPACE
    Selected epochs range from 1 (a) to 9 (c); the best loss, a, stopped at epoch 1. The ranking
    depends on stopping time: fine-label MAP@R falls with the selected epoch (Spearman ρ = -1.00
    over 3 losses), so "keeps the most fine structure" partly measures when each run stopped.
    """
    epoch = runs.groupby(label)["best_epoch"].mean() + 1
    fine = runs.groupby(label)[f"fine_{metric}"].mean()
    best = comparison.loc[comparison["metric"] == metric, "reference"].iloc[0]
    lo, hi = epoch.idxmin(), epoch.idxmax()
    rho = epoch.rank().corr(fine.reindex(epoch.index).rank()) if len(epoch) >= 3 else float("nan")
    text = (
        f"Selected epochs range from {epoch[lo]:.0f} ({lo}) to {epoch[hi]:.0f} ({hi}); the best "
        f"loss, {best}, stopped at epoch {epoch[best]:.0f}."
    )
    name = f"fine-label {LABELS.get(metric, metric)}"
    falls = rho == rho and rho <= -STOPPING_RHO
    if falls or epoch[hi] >= STOPPING_RATIO * epoch[lo]:
        why = (
            f"{name} falls with the selected epoch (Spearman ρ = {rho:.2f} over {len(epoch)} "
            "losses)"
            if falls
            else f"the selected epochs differ by a factor {epoch[hi] / epoch[lo]:.1f}"
        )
        return (
            f'{text} The ranking depends on stopping time: {why}, so "keeps the most fine '
            'structure" partly measures when each run stopped.'
        )
    rho_text = "" if rho != rho else f"; Spearman ρ of {name} with the epoch {rho:.2f}"
    return (
        f"{text} The selected epochs are within a factor {STOPPING_RATIO:g} of each other"
        f"{rho_text}: the ranking is not explained by stopping time."
    )


def not_converged(runs: pd.DataFrame, label: str) -> list[str]:
    """Methods (``label`` column) with a run that hit the epoch cap."""
    bad = runs[~runs["converged"].astype(bool)]
    return list(dict.fromkeys(bad[label]))


def write_experiment(
    stem: str | Path, runs: pd.DataFrame, comparison: pd.DataFrame, summary: dict[str, Any]
) -> None:
    """``<stem>.csv`` (runs), ``<stem>-comparison.csv`` (percent) and ``<stem>.json``."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    epochs_for_readers(percent(runs)).round(4).to_csv(stem.with_suffix(".csv"), index=False)
    percent_comparison(comparison).round(4).to_csv(
        stem.parent / f"{stem.name}-comparison.csv", index=False
    )
    stem.with_suffix(".json").write_text(json.dumps(summary, indent=1), encoding="utf-8")


def metric_plot(
    comparison: pd.DataFrame,
    runs: pd.DataFrame,
    metric: str,
    label: str,
    *,
    title: str,
    names: tuple[str, str, str] = VS_BEST,
    sort: bool = False,
    prefix: str = "",
) -> Figure:
    """One metric of an experiment page (an ablation's arms, the multi-modal losses): each
    arm's or loss's mean with its interval and its paired difference from the reference, in
    percent (``label``: the runs' column naming them, "variant" or "loss"; ``prefix`` before
    the metric's name on the axis, as :func:`arm_table`'s)."""
    frame = comparison_frame(
        percent_comparison(comparison), metric, runs=runs, label=label, sort=sort
    )
    return interval_plot(frame, f"{prefix}{LABELS.get(metric, metric)}", title=title, names=names)


def what_this_shows(
    summary: str, sentences: Sequence[str], not_converged: Sequence[str], unit: str
) -> str:
    """The page's closing bullets (Markdown): the summary, the computed sentences, and whether
    every ``unit`` ("arm", "run") trained to its plateau.

    >>> print(what_this_shows("A ties B.", ["C is 2 points lower."], [], "arm"))
    - A ties B.
    - C is 2 points lower.
    - Every arm trained to its validation plateau.
    """
    last = (
        f"Every {unit} trained to its validation plateau."
        if not not_converged
        else f"Not converged (hit the epoch cap): {', '.join(not_converged)}."
    )
    return "\n".join(f"- {s}" for s in [summary, *sentences, last])
