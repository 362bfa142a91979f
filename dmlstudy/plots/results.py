"""Result figures: per-loss metric points with 95% CIs, Recall@K curves, training curves,
ablation lines with confidence bands, and a 2-D projection of embeddings.

>>> import pandas as pd
>>> runs = pd.DataFrame({"loss": ["a", "a", "b", "b"], "seed": [0, 1, 0, 1],
...                      "recall@1": [.5, .6, .4, .45]})
>>> fig = metric_points(runs, "recall@1")
>>> [t.get_text() for t in fig.axes[0].get_yticklabels()]
['a', 'b']
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from dmlstudy.evaluation import mean_ci


def t_interval(values: pd.Series) -> tuple[float, float]:
    """seaborn ``errorbar`` callable: the Student-t 95% CI of the mean over seeds
    (:func:`dmlstudy.evaluation.mean_ci`, as in the tables); no band for a single seed.

    >>> tuple(round(v, 3) for v in t_interval(pd.Series([1.0, 2.0, 3.0])))
    (-0.484, 4.484)
    """
    mean, half = mean_ci(np.asarray(values, dtype=np.float64))
    half = 0.0 if np.isnan(half) else half
    return mean - half, mean + half


def loss_palette(losses: Sequence[str]) -> dict[str, tuple[float, float, float]]:
    """A fixed colour per loss, the same in every figure: registry order over seaborn's 20-colour
    ``tab20`` (the default 10-colour cycle repeats within the 15 losses). Unknown names follow.

    >>> pal = loss_palette(["triplet", "rsw"])
    >>> (pal["triplet"] == loss_palette(["npair", "triplet"])["triplet"]
    ...  and pal["triplet"] != pal["rsw"])
    True
    """
    from dmlstudy.losses import list_losses

    registered = list(list_losses())
    names = registered + [name for name in dict.fromkeys(losses) if name not in registered]
    colors = sns.color_palette("tab20", max(len(names), 20))
    return {name: colors[names.index(name) % len(colors)] for name in dict.fromkeys(losses)}


def metric_points(runs: pd.DataFrame, metric: str, *, title: str | None = None) -> Figure:
    """Mean of ``metric`` per loss (best on top) with a Student-t 95% CI over seeds, seeds as
    dots."""
    stats = runs.groupby("loss")[metric].apply(lambda v: mean_ci(v.to_numpy())).apply(pd.Series)
    stats.columns = ["mean", "ci"]
    stats = stats.sort_values("mean", ascending=False)
    fig = Figure(figsize=(6, 0.35 * len(stats) + 1.2), layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(stats))
    ax.errorbar(
        stats["mean"], y, xerr=np.nan_to_num(stats["ci"].to_numpy()), fmt="o", color="C0", capsize=3
    )
    pos = {loss: i for i, loss in enumerate(stats.index)}
    ax.scatter(
        runs[metric], runs["loss"].map(pos), s=10, color="C1", alpha=0.7, zorder=3, label="seeds"
    )
    ax.set_yticks(y, stats.index)
    ax.invert_yaxis()
    ax.set_xlabel(metric)
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title or f"{metric} (mean, 95% CI over seeds)")
    return fig


def recall_at_k(
    curves: pd.DataFrame, *, title: str = "Recall@K", ylabel: str = "Recall@K (%)"
) -> Figure:
    """Recall@K against K (log2 axis) per loss; bands are 95% CIs over seeds (``seed`` rows)."""
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.subplots()
    sns.lineplot(
        data=curves,
        x="k",
        y="recall",
        hue="loss",
        marker="o",
        errorbar=t_interval,
        ax=ax,
        palette=loss_palette(curves["loss"].unique()),
    )
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(curves["k"].unique()), [str(k) for k in sorted(curves["k"].unique())])
    ax.legend(fontsize=7, ncols=2)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return fig


def training_curves(
    history: pd.DataFrame,
    *,
    metrics: Sequence[str] = ("train_loss", "val_map@r", "val_recall@1"),
    title: str | None = None,
) -> Figure:
    """One panel per column in ``metrics`` against epoch, a line per loss (``loss`` column)."""
    metrics = [m for m in metrics if m in history.columns]
    if not metrics:
        raise ValueError(f"history has none of the columns to plot; it has {list(history.columns)}")
    fig = Figure(figsize=(4.2 * len(metrics), 3.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(metrics)))
    for ax, m in zip(axes, metrics):
        hue = "loss" if "loss" in history else None
        sns.lineplot(
            data=history.dropna(subset=[m]),
            x="epoch",
            y=m,
            hue=hue,
            marker="o",
            errorbar=t_interval,
            ax=ax,
            legend=ax is axes[-1],
            palette=loss_palette(history["loss"].unique()) if hue else None,
        )
        ax.set_title(m)
    if axes[-1].get_legend() is not None:
        sns.move_legend(axes[-1], "upper left", bbox_to_anchor=(1, 1), fontsize=7)
    if title:
        fig.suptitle(title)
    return fig


def ablation_lines(
    results: pd.DataFrame,
    x: str,
    y: str = "map@r",
    *,
    hue: str | None = None,
    title: str | None = None,
    categorical: bool | None = None,
) -> Figure:
    """``y`` against the ablated variable ``x`` with a 95% CI band over seeds (seaborn)."""
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    if categorical is None:
        categorical = not pd.api.types.is_numeric_dtype(results[x])
    if categorical:
        sns.pointplot(data=results, x=x, y=y, hue=hue, errorbar=t_interval, capsize=0.1, ax=ax)
        ax.tick_params(axis="x", labelrotation=20)
    else:
        sns.lineplot(data=results, x=x, y=y, hue=hue, marker="o", errorbar=t_interval, ax=ax)
    ax.set_title(title or f"{y} vs {x}")
    ax.grid(alpha=0.3)
    return fig


def projection_2d(
    embeddings: np.ndarray,
    labels: np.ndarray,
    *,
    method: str = "pca",
    seed: int = 0,
    metric: str = "cosine",
    title: str | None = None,
    max_points: int = 3000,
) -> Figure:
    """2-D PCA or t-SNE (scikit-learn) of embeddings, coloured by ``labels`` (e.g. coarse class).

    Cosine-trained embeddings are L2-normalized first; at most ``max_points`` (seeded subset).
    """
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    x = np.asarray(embeddings, np.float32)
    labels = np.asarray(labels)
    if len(x) > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(len(x), max_points, replace=False))
        x, labels = x[keep], labels[keep]
    if metric == "cosine":
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    if method == "pca":
        xy = PCA(n_components=2, random_state=seed).fit_transform(x)
    elif method == "tsne":
        xy = TSNE(
            n_components=2, random_state=seed, init="pca", perplexity=min(30, len(x) - 1)
        ).fit_transform(x)
    else:
        raise ValueError(f"unknown projection method {method!r}; valid choices: pca, tsne")
    fig = Figure(figsize=(5, 5), layout="constrained")
    ax = fig.subplots()
    ax.scatter(xy[:, 0], xy[:, 1], c=pd.factorize(labels)[0], cmap="tab20", s=4, alpha=0.8)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(
        title or f"{method.upper()} of {len(x)} embeddings ({len(np.unique(labels))} colours)"
    )
    return fig
