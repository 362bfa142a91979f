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
    from dmlstudy.pipeline.geometry import loss_forces, rsw_warp_curves, toy_batch

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


def test_fifteen_losses_get_fifteen_colours_the_same_in_every_figure():
    from dmlstudy.losses import list_losses
    from dmlstudy.plots import loss_palette, recall_at_k

    names = list(list_losses())
    palette = loss_palette(names)
    assert len(set(palette.values())) == len(names) == 15
    assert (
        loss_palette(names[::-1]) == palette
    )  # order of appearance does not change a loss's colour
    curves = pd.DataFrame(
        {"loss": np.repeat(names, 2), "seed": 0, "k": np.tile([1, 2], 15), "recall": 0.5}
    )
    fig = recall_at_k(curves)
    lines = {
        t.get_text(): h.get_color()
        for t, h in zip(
            fig.axes[0].get_legend().get_texts(), fig.axes[0].get_legend().legend_handles
        )
    }
    assert len(set(lines.values())) == 15
