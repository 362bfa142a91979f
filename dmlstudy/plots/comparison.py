"""Methods compared with intervals: each method's mean with its 95% CI (bootstrap over test
classes), the best (or reference) as a star, methods tied with it filled, the others hollow, and
runs that did not converge flagged in red beside their name. A frame whose ``verdict`` is
False (fewer than 3 seeds: its tests ignore training randomness) marks no tie and no
difference: every method but the best estimate is drawn alike, and the legend says why.

Input frames have columns ``method, mean, low, high, tied, best`` (percent) and optionally
``verdict`` and ``converged`` (``dmlstudy.analysis.study_table.headline_frame`` /
``comparison_frame``).

>>> import pandas as pd
>>> f = pd.DataFrame({"method": ["a", "b"], "mean": [30., 20.], "low": [28., 18.],
...                   "high": [32., 22.], "tied": [True, False], "best": [True, False],
...                   "converged": [True, False]})
>>> fig = interval_plot(f, "MAP@R")
>>> [t.get_text() for t in fig.axes[0].get_yticklabels()]
['a', 'b (not converged)']
>>> fig.axes[0].get_legend_handles_labels()[1]
['best', 'significantly below the best']
>>> f["verdict"] = False  # fewer than 3 seeds
>>> interval_plot(f, "MAP@R").axes[0].get_legend_handles_labels()[1]
['highest mean', 'fewer than 3 seeds: no tied/below verdict']
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

BEST, TIED, BELOW, FLAG = "#1f4e99", "#4a90d9", "#9a9a9a", "#c0392b"
#: Legend words for the main comparison (vs the best) and for an ablation (vs its reference).
VS_BEST = ("best", "tied with the best (Holm-adjusted paired test)", "significantly below the best")
VS_REFERENCE = (
    "reference arm",
    "tied with it (Holm-adjusted paired test)",
    "significantly different",
)
#: Legend words where there is no verdict (fewer than 3 seeds): the best estimate, the others.
NO_VERDICT_LEGEND = ("highest mean", "fewer than 3 seeds: no tied/below verdict")


def frame_verdict(frame: pd.DataFrame) -> bool:
    """Whether ``frame`` carries a tied/below verdict: no ``verdict`` column, or one all True."""
    return "verdict" not in frame.columns or bool(frame["verdict"].astype(bool).all())


def interval_axes(
    ax: Axes, frame: pd.DataFrame, label: str, names: tuple[str, str, str] = VS_BEST
) -> None:
    """Draw ``frame`` (top row first) on ``ax``: x is ``label`` in percent."""
    f = frame.reset_index(drop=True)
    y = np.arange(len(f))
    best = f[f["best"]]
    if len(best):
        ax.axvspan(best["low"].iloc[0], best["high"].iloc[0], color=BEST, alpha=0.08, lw=0)
    best_style = dict(marker="*", ms=12, color=BEST, mfc=BEST)
    if not frame_verdict(f):  # no tied/below marker
        kinds = [
            (f["best"], best_style, NO_VERDICT_LEGEND[0]),
            (~f["best"], dict(marker="o", ms=6, color=BELOW, mfc=BELOW), NO_VERDICT_LEGEND[1]),
        ]
    else:
        kinds = [
            (f["best"], best_style, names[0]),
            (f["tied"] & ~f["best"], dict(marker="o", ms=6, color=TIED, mfc=TIED), names[1]),
            (~f["tied"] & ~f["best"], dict(marker="o", ms=6, color=BELOW, mfc="white"), names[2]),
        ]
    for mask, style, name in kinds:
        if not mask.any():
            continue
        sub = f[mask]
        err = np.vstack([sub["mean"] - sub["low"], sub["high"] - sub["mean"]])
        ax.errorbar(
            sub["mean"], y[mask.to_numpy()], xerr=err, ls="none", capsize=3, label=name, **style
        )
    converged = f["converged"] if "converged" in f else pd.Series(True, index=f.index)
    ax.set_yticks(y, [m if c else f"{m} (not converged)" for m, c in zip(f["method"], converged)])
    for tick, c in zip(ax.get_yticklabels(), converged):
        if not c:
            tick.set_color(FLAG)
    ax.set_ylim(len(f) - 0.5, -0.5)
    ax.set_xlabel(f"{label} (%, 95% CI: bootstrap over test classes)")
    ax.grid(axis="x", alpha=0.3)


def interval_plot(
    frame: pd.DataFrame,
    label: str,
    *,
    title: str | None = None,
    names: tuple[str, str, str] = VS_BEST,
) -> Figure:
    """One panel of :func:`interval_axes` with its legend."""
    fig = Figure(figsize=(7, 0.32 * len(frame) + 1.9), layout="constrained")
    ax = fig.subplots()
    interval_axes(ax, frame, label, names)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=3, fontsize=7)
    ax.set_title(title or label)
    return fig


def headline_figure(panels: Mapping[str, Mapping[str, pd.DataFrame]], *, title: str) -> Figure:
    """A row per dataset and a column per metric (``panels[dataset][label] = frame``), one
    shared legend: the study's headline figure."""
    rows = list(panels)
    cols = list(next(iter(panels.values())))
    height = max(len(f) for p in panels.values() for f in p.values())
    fig = Figure(figsize=(5.2 * len(cols), (0.3 * height + 1.3) * len(rows) + 0.8))
    fig.set_layout_engine("constrained")
    axes = np.atleast_2d(fig.subplots(len(rows), len(cols), squeeze=False))
    for i, dataset in enumerate(rows):
        for j, label in enumerate(cols):
            interval_axes(axes[i, j], panels[dataset][label], label)
            axes[i, j].set_title(f"{dataset}: {label}")
            if j:
                axes[i, j].tick_params(labelleft=True)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    for ax in axes.flat[1:]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="outside lower center", ncols=3, fontsize=8)
    fig.suptitle(title)
    return fig
