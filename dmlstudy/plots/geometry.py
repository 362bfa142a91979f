"""Loss-geometry figures: per-loss force fields on a 2-D toy batch, RSW's warped distance.

>>> import numpy as np
>>> x, y = np.array([[1.0, 0], [0, 1.0]]), np.array([0, 1])
>>> fig = force_panels({"toy": (x, y, -x, None)})
>>> len(fig.axes)
1
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Circle

_COLORS = np.array(["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02"])


def force_panels(
    panels: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]],
    *,
    ncols: int = 5,
    suptitle: str | None = None,
) -> Figure:
    """One panel per loss: samples coloured by class, arrows ``−∂L/∂x`` (normalised per panel
    so the largest arrow has length 0.5), learnable 2-D points (proxies, vertices) as crosses.

    ``panels`` maps a title to ``(x (N,2), labels (N,), forces (N,2), proxies (P,2) or None)``.
    """
    n = len(panels)
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig = Figure(figsize=(3 * ncols, 3 * nrows + (0.4 if suptitle else 0)), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax, (title, (x, y, f, proxies)) in zip(axes, panels.items()):
        colors = _COLORS[np.asarray(y) % len(_COLORS)]
        ax.add_patch(Circle((0, 0), 1, fill=False, ls=":", color="0.7"))
        ax.scatter(x[:, 0], x[:, 1], c=colors, s=18, zorder=3)
        norm = np.abs(f).max()
        scale = 0.5 / norm if norm > 0 else 0.0
        ax.quiver(
            x[:, 0],
            x[:, 1],
            f[:, 0] * scale,
            f[:, 1] * scale,
            color=colors,
            angles="xy",
            scale_units="xy",
            scale=1,
            width=0.006,
        )
        if proxies is not None:
            k = len(proxies) // max(1, int(np.max(y)) + 1)
            pc = _COLORS[(np.arange(len(proxies)) // max(1, k)) % len(_COLORS)] if k else "k"
            ax.scatter(proxies[:, 0], proxies[:, 1], marker="x", c=pc, s=40, zorder=4)
        ax.set_title(f"{title}\nmax |force| {norm:.2g}", fontsize=9)
        ax.set_aspect("equal")
        ax.set_xlim(-1.8, 1.8)
        ax.set_ylim(-1.8, 1.8)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[n:]:
        ax.set_axis_off()
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def warp_curves(
    d: np.ndarray, curves: dict[str, np.ndarray], *, title: str = "RSW warped true-class distance"
) -> Figure:
    """``w(d)`` against ``d`` for each named curve, with the identity (no warp) dashed."""
    fig = Figure(figsize=(5.5, 4), layout="constrained")
    ax = fig.subplots()
    ax.plot(d, d, "k--", lw=1, label="no warp: w = d")
    for name, w in curves.items():
        ax.plot(d, w, label=name)
    ax.set_xlabel("distance to own proxy d")
    ax.set_ylabel("warped distance w(d)")
    ax.legend()
    ax.set_title(title)
    return fig
