"""Image figures: a grid of images and retrieval galleries (query + top-k, hits and misses marked).

Figures are built with ``matplotlib.figure.Figure`` (no pyplot state), so tests and notebooks
never leak open figures; in a notebook, ``display(fig)`` or ending a cell with ``fig`` shows it.

>>> import numpy as np
>>> fig = image_grid(np.zeros((3, 8, 8, 1), np.uint8), titles=["a", "b", "c"], ncols=2)
>>> len(fig.axes)
4
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

HIT, MISS = "#1a9850", "#d73027"


def _show(ax, image: np.ndarray) -> None:
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255)
    ax.set_xticks([])
    ax.set_yticks([])


def image_grid(
    images: np.ndarray,
    titles: Sequence[str] | None = None,
    *,
    ncols: int = 8,
    suptitle: str | None = None,
    size: float = 1.3,
) -> Figure:
    """A grid of uint8 images (N×H×W×C, C = 1 or 3) with optional per-image titles."""
    n = len(images)
    if n == 0:
        raise ValueError("image_grid needs at least one image")
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig = Figure(
        figsize=(size * ncols, size * nrows + (0.4 if suptitle else 0)), layout="constrained"
    )
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for i, ax in enumerate(axes):
        if i < n:
            _show(ax, images[i])
            if titles is not None:
                ax.set_title(str(titles[i])[-18:], fontsize=7)
        else:
            ax.set_axis_off()
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def retrieval_gallery(
    query_images: np.ndarray,
    neighbor_images: np.ndarray,
    hits: np.ndarray,
    *,
    row_titles: Sequence[str] | None = None,
    suptitle: str | None = None,
    size: float = 1.0,
) -> Figure:
    """Rows of ``query | top-k neighbours``; neighbours framed green (same class) or red.

    Args:
        query_images: Q×H×W×C uint8.
        neighbor_images: Q×k×H×W×C uint8, nearest first.
        hits: Q×k bool, whether each neighbour shares the query's label.
        row_titles: a label per row (e.g. the loss name).
    """
    hits = np.asarray(hits, bool)
    q, k = hits.shape
    if neighbor_images.shape[:2] != (q, k) or len(query_images) != q:
        raise ValueError(
            f"shapes disagree: {len(query_images)} queries, neighbours "
            f"{neighbor_images.shape[:2]}, hits {hits.shape}"
        )
    fig = Figure(
        figsize=(size * (k + 1.4), size * q + (0.4 if suptitle else 0)), layout="constrained"
    )
    axes = fig.subplots(q, k + 1, squeeze=False)
    for r in range(q):
        _show(axes[r, 0], query_images[r])
        axes[r, 0].set_ylabel(row_titles[r] if row_titles is not None else f"query {r}", fontsize=7)
        for c in range(k):
            ax = axes[r, c + 1]
            _show(ax, neighbor_images[r, c])
            h, w = neighbor_images.shape[2:4]
            ax.add_patch(
                Rectangle((-0.5, -0.5), w, h, fill=False, lw=3, ec=HIT if hits[r, c] else MISS)
            )
    axes[0, 0].set_title("query", fontsize=8)
    for c in range(k):
        axes[0, c + 1].set_title(f"#{c + 1}", fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def split_examples(data: Any, per_split: int = 8) -> list[Figure]:
    """One row of images per split of a prepared dataset (``PreparedDataset``): the first image
    of each of its first ``per_split`` classes, titled with the class name."""
    figures = []
    for split in ("train", "val", "test"):
        rows, labels = data.split(split)
        if len(rows) == 0:
            continue
        classes = range(min(per_split, int(labels.max()) + 1))
        first = [rows[labels == c][0] for c in classes]
        names = data.class_names(split)
        figures.append(
            image_grid(
                data.images[first],
                titles=[names[c] for c in classes],
                ncols=per_split,
                suptitle=f"{split}: {len(set(labels.tolist()))} classes, {len(rows)} images",
            )
        )
    return figures
