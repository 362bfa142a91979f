"""Convergence, shown: each loss's validation MAP@R per epoch (one panel per loss, a line per
seed), its selected (best) epoch as a star, the plateau rule's lr drop as a dashed line, and a
red "not converged" in the title of a loss with a run that hit the epoch cap.

``curves``: ``loss, seed, epoch, val_map@r`` (percent, 1-based epochs); ``marks``: one row per
run with ``loss, seed, best_epoch, lr_drops, converged``
(:func:`dmlstudy.analysis.convergence.load_convergence`).

>>> import pandas as pd
>>> c = pd.DataFrame({"loss": ["a"] * 3, "seed": 0, "epoch": [1, 2, 3], "val_map@r": [1., 3., 2.]})
>>> m = pd.DataFrame({"loss": ["a"], "seed": [0], "best_epoch": [2], "lr_drops": [[2]],
...                   "converged": [False]})
>>> fig = convergence_curves(c, m)
>>> fig.axes[0].get_title()
'a — not converged'
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from dmlstudy.plots.comparison import BEST, FLAG


def convergence_curves(
    curves: pd.DataFrame,
    marks: pd.DataFrame,
    *,
    metric: str = "val_map@r",
    ncols: int = 5,
    title: str | None = None,
) -> Figure:
    """Small multiples of ``metric`` against epoch, one panel per loss (in ``marks`` order)."""
    losses = list(dict.fromkeys(marks["loss"]))
    nrows = -(-len(losses) // ncols)
    ncols = min(ncols, len(losses))
    fig = Figure(figsize=(2.8 * ncols, 2.3 * nrows + 0.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False, sharey=True)).ravel()
    for ax, loss in zip(axes, losses):
        mine = marks[marks["loss"] == loss]
        for _, run in mine.iterrows():
            c = curves[(curves["loss"] == loss) & (curves["seed"] == run["seed"])]
            ax.plot(c["epoch"], c[metric], marker=".", lw=1, color=BEST, alpha=0.8)
            at = c[c["epoch"] == run["best_epoch"]]
            ax.plot(at["epoch"], at[metric], marker="*", ms=11, color="#e69f00", ls="none")
            for drop in run["lr_drops"]:
                ax.axvline(drop + 0.5, color="0.4", ls="--", lw=0.9)
        ok = bool(mine["converged"].all())
        ax.set_title(
            loss if ok else f"{loss} — not converged", fontsize=9, color="k" if ok else FLAG
        )
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes[len(losses) :]:
        ax.set_visible(False)
    fig.supxlabel("epoch (★ selected epoch; dashed: lr drop by the plateau rule)", fontsize=9)
    fig.supylabel(
        f"{metric.replace('val_', 'validation ').replace('map@r', 'MAP@R')} (%)", fontsize=9
    )
    if title:
        fig.suptitle(title)
    return fig
