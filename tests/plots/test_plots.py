"""Plot functions return Figures with the expected content (MPLBACKEND-independent: no pyplot)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from dmlstudy import plots


def test_image_grid_and_gallery_marks_hits():
    imgs = np.zeros((2, 3, 8, 8, 1), np.uint8)
    hits = np.array([[True, False, True], [False, False, True]])
    fig = plots.retrieval_gallery(imgs[:, 0], imgs, hits, row_titles=["a", "b"])
    colors = [p.get_edgecolor()[:3] for ax in fig.axes for p in ax.patches]
    green = tuple(int(plots.images.HIT[i : i + 2], 16) / 255 for i in (1, 3, 5))
    assert len(colors) == 6 and sum(np.allclose(c, green) for c in colors) == 3
    with pytest.raises(ValueError, match="shapes disagree"):
        plots.retrieval_gallery(imgs[:1, 0], imgs, hits)


def test_result_figures():
    runs = pd.DataFrame(
        {
            "loss": list("aabb"),
            "seed": [0, 1, 0, 1],
            "recall@1": [0.5, 0.6, 0.8, 0.9],
            "map@r": [0.1] * 4,
        }
    )
    fig = plots.metric_points(runs, "recall@1")
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["b", "a"]
    curves = pd.DataFrame(
        {"loss": ["a"] * 4, "seed": [0, 0, 1, 1], "k": [1, 2, 1, 2], "recall": [0.5, 0.7, 0.6, 0.8]}
    )
    assert isinstance(plots.recall_at_k(curves), Figure)
    hist = pd.DataFrame(
        {"epoch": [0, 1], "train_loss": [1.0, 0.5], "val_map@r": [0.1, 0.2], "loss": ["a", "a"]}
    )
    assert len(plots.training_curves(hist).axes) == 2
    with pytest.raises(ValueError, match="none of the columns"):
        plots.training_curves(hist[["epoch"]])
    abl = pd.DataFrame({"value": [64, 64, 128, 128], "map@r": [0.1, 0.2, 0.3, 0.4]})
    assert isinstance(plots.ablation_lines(abl, "value"), Figure)


def test_projection_2d_pca_and_bad_method():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 8))
    fig = plots.projection_2d(x, np.arange(50) % 3, method="pca")
    assert len(fig.axes[0].collections[0].get_offsets()) == 50
    with pytest.raises(ValueError, match="pca, tsne"):
        plots.projection_2d(x, np.zeros(50), method="umap")


def test_force_panels_and_warp_curves():
    from dmlstudy.losses.geometry import loss_forces, rsw_warp_curves, toy_batch

    x, y = toy_batch(3, 3)
    f = loss_forces("proxy_anchor", {}, x, y)
    assert f.proxies.shape == (3, 2) and np.abs(f.forces).max() > 0
    fig = plots.force_panels({"proxy_anchor": (x, y, f.forces, f.proxies)})
    assert len(fig.axes) == 1
    w = rsw_warp_curves({})
    below = w["d"] < 24.68
    assert (w["phase2"][below] >= w["d"][below] - 1e-9).all()  # outward warp: w >= d below alpha
    assert isinstance(plots.warp_curves(w["d"], {"p1": w["phase1"]}), Figure)


def test_seed_bands_are_student_t_intervals():
    """Bands over seeds are the Student-t 95% CI of dmlstudy.evaluation.mean_ci (as the tables),
    not seaborn's bootstrap (which, for 2 seeds, spans only [min, max])."""
    import pandas as pd
    from matplotlib.collections import PolyCollection

    from dmlstudy.evaluation import mean_ci
    from dmlstudy.plots.results import ablation_lines

    results = pd.DataFrame(
        {"value": [1, 1, 2, 2], "seed": [0, 1, 0, 1], "map@r": [0.0, 1.0, 0.4, 0.6]}
    )
    fig = ablation_lines(results, x="value", y="map@r", categorical=False)
    band = next(c for c in fig.axes[0].collections if isinstance(c, PolyCollection))
    ys = band.get_paths()[0].vertices[:, 1]
    m, h = mean_ci([0.0, 1.0])
    assert ys.min() == pytest.approx(m - h) and ys.max() == pytest.approx(m + h)


@pytest.mark.parametrize("new_loss", [False, True])
def test_every_loss_gets_its_own_colour_the_same_in_every_figure(new_loss, monkeypatch):
    """Every registered loss, a newly added one too (issue #17), gets its own colour."""
    from dmlstudy.losses import base, get_loss_class, list_losses
    from dmlstudy.plots import loss_palette, recall_at_k

    if new_loss:
        monkeypatch.setitem(base._REGISTRY, "norm_softmax", get_loss_class("arcface"))
    names = list(list_losses())
    palette = loss_palette(names)
    assert len(set(palette.values())) == len(names) == len(list_losses())
    assert (
        loss_palette(names[::-1]) == palette
    )  # order of appearance does not change a loss's colour
    curves = pd.DataFrame(
        {"loss": np.repeat(names, 2), "seed": 0, "k": np.tile([1, 2], len(names)), "recall": 0.5}
    )
    fig = recall_at_k(curves)
    lines = {
        t.get_text(): h.get_color()
        for t, h in zip(
            fig.axes[0].get_legend().get_texts(), fig.axes[0].get_legend().legend_handles
        )
    }
    assert len(set(lines.values())) == len(names)


def _frame():
    return pd.DataFrame(
        {
            "method": ["a", "b", "c"],
            "mean": [30.0, 29.0, 20.0],
            "low": [28.0, 27.0, 18.0],
            "high": [32.0, 31.0, 22.0],
            "tied": [True, True, False],
            "best": [True, False, False],
            "converged": [True, True, False],
        }
    )


def test_interval_plot_marks_best_ties_and_unconverged_runs():
    from matplotlib.colors import to_hex

    from dmlstudy.plots.comparison import BELOW, BEST, FLAG, TIED

    fig = plots.interval_plot(_frame(), "MAP@R")
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["a", "b", "c (not converged)"]  # the given order, top row first
    assert to_hex(ax.get_yticklabels()[2].get_color()) == FLAG
    markers = {
        line.get_marker(): (to_hex(line.get_color()), to_hex(line.get_markerfacecolor()))
        for line in ax.get_lines()
        if line.get_marker() not in ("None", "", "|")
    }
    assert markers["*"] == (BEST, BEST)  # the best: a star
    points = [ln for ln in ax.get_lines() if ln.get_marker() == "o"]
    faces = {to_hex(ln.get_color()): to_hex(ln.get_markerfacecolor()) for ln in points}
    assert faces == {TIED: TIED, BELOW: "#ffffff"}  # tied filled, below hollow
    # the interval of each method is drawn from low to high
    xs = sorted(
        seg[:, 0].tolist()
        for c in ax.collections
        for seg in c.get_segments()
        if len(seg) == 2 and seg[0, 1] == seg[1, 1]
    )
    assert [18.0, 22.0] in xs and [28.0, 32.0] in xs
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[0] == "best" and legend[2] == "significantly below the best"
    assert "bootstrap over test classes" in ax.get_xlabel()


def test_headline_figure_has_a_panel_per_dataset_and_metric():
    fig = plots.headline_figure(
        {
            "omniglot": {"R@1": _frame(), "MAP@R": _frame()},
            "cub200": {"R@1": _frame(), "MAP@R": _frame()},
        },
        title="t",
    )
    assert [ax.get_title() for ax in fig.axes] == [
        "omniglot: R@1",
        "omniglot: MAP@R",
        "cub200: R@1",
        "cub200: MAP@R",
    ]
    assert len(fig.legends) == 1 and len(fig.legends[0].get_texts()) == 3


def test_fewer_than_three_seeds_draw_no_tied_or_below_marker():
    """A frame without a verdict (``verdict`` False: fewer than 3 seeds) draws the best estimate
    and every other method alike, and its legend says why: no figure states a verdict that its
    seeds cannot support (issue #16)."""
    fig = plots.headline_figure({"omniglot": {"MAP@R": _frame().assign(verdict=False)}}, title="t")
    from matplotlib.colors import to_hex

    from dmlstudy.plots.comparison import BELOW

    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["highest mean", "fewer than 3 seeds: no tied/below verdict"]
    points = [ln for ln in fig.axes[0].get_lines() if ln.get_marker() == "o"]
    # b (tied by its class test) and c (below by it) drawn alike, in one series
    assert len(points) == 1 and len(points[0].get_xdata()) == 2
    assert {to_hex(points[0].get_color()), to_hex(points[0].get_markerfacecolor())} == {BELOW}


def test_convergence_curves_mark_the_selected_epoch_and_the_lr_drop():
    curves = pd.DataFrame(
        {
            "loss": ["a"] * 4 + ["b"] * 3,
            "seed": 0,
            "epoch": [1, 2, 3, 4, 1, 2, 3],
            "val_map@r": [10.0, 20.0, 19.0, 18.0, 5.0, 6.0, 7.0],
        }
    )
    marks = pd.DataFrame(
        {
            "loss": ["a", "b"],
            "seed": [0, 0],
            "best_epoch": [2, 3],
            "lr_drops": [[3], []],
            "converged": [True, False],
        }
    )
    fig = plots.convergence_curves(curves, marks)
    a, b = fig.axes[:2]
    assert a.get_title() == "a" and b.get_title() == "b — not converged"
    star = next(ln for ln in a.get_lines() if ln.get_marker() == "*")
    assert star.get_xdata().tolist() == [2] and star.get_ydata().tolist() == [20.0]
    drops = [ln for ln in a.get_lines() if ln.get_linestyle() == "--"]
    assert [ln.get_xdata()[0] for ln in drops] == [3.5]  # lr drops after epoch 3
    assert not [ln for ln in b.get_lines() if ln.get_linestyle() == "--"]
