"""Figures shared by the notebooks; every function returns a ``matplotlib.figure.Figure``."""

from dmlstudy.plots.comparison import headline_figure, interval_plot
from dmlstudy.plots.convergence import convergence_curves
from dmlstudy.plots.geometry import force_panels, warp_curves
from dmlstudy.plots.images import image_grid, retrieval_gallery
from dmlstudy.plots.results import (
    ablation_lines,
    loss_palette,
    metric_points,
    projection_2d,
    recall_at_k,
    training_curves,
)

__all__ = [
    "ablation_lines",
    "convergence_curves",
    "force_panels",
    "headline_figure",
    "image_grid",
    "interval_plot",
    "loss_palette",
    "metric_points",
    "projection_2d",
    "recall_at_k",
    "retrieval_gallery",
    "training_curves",
    "warp_curves",
]
