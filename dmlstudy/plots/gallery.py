"""Retrieval galleries (the same query images for every loss, each with its top-k neighbours
framed green when they share the query's class, red otherwise) and a 2-D projection.

A query never retrieves itself; neighbours come from the run's own metric (cosine, or Euclidean
on raw embeddings for RSW), via :func:`dmlstudy.evaluation.nearest_neighbors`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from dmlstudy.evaluation import nearest_neighbors
from dmlstudy.plots import projection_2d, retrieval_gallery
from dmlstudy.training.outputs import load_embeddings, load_run
from dmlstudy.training.rundir import run_path


def gallery_neighbors(
    run_dir: str | Path, queries: np.ndarray, k: int = 5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Retrieval results for galleries: for query positions ``queries`` (into the test
    embeddings, which must be queries), the prepared-dataset image rows of the queries (Q,), of
    their top-``k`` neighbours (Q×k), and hit flags (Q×k). A query never retrieves itself."""
    e = load_embeddings(run_dir)
    metric = load_run(run_dir)["metric"]
    n = len(e["labels"])
    q = e.get("is_query", np.ones(n, bool))
    g = e.get("is_gallery", np.ones(n, bool))
    queries = np.asarray(queries)
    if not q[queries].all():
        raise ValueError("gallery_neighbors: every position in queries must be a query image")
    if q.all() and g.all():  # query-is-gallery: the queries' top k+1 over everything, minus self
        nb = nearest_neighbors(
            e["embeddings"][queries],
            e["labels"][queries],
            k + 1,
            gallery_embeddings=e["embeddings"],
            gallery_labels=e["labels"],
            metric=metric,
        )
        keep = nb.indices != queries[:, None]
        idx = np.stack([row[m][:k] for row, m in zip(nb.indices, keep)])
        hits = np.stack([row[m][:k] for row, m in zip(nb.hits, keep)])
        return e["rows"][queries], e["rows"][idx], hits
    gal = np.flatnonzero(g)
    nb = nearest_neighbors(
        e["embeddings"][queries],
        e["labels"][queries],
        k,
        gallery_embeddings=e["embeddings"][gal],
        gallery_labels=e["labels"][gal],
        metric=metric,
    )
    return e["rows"][queries], e["rows"][gal[nb.indices]], nb.hits


def pick_queries(run_dir: str | Path, n: int, seed: int = 0) -> np.ndarray:
    """``n`` query positions of a run's test embeddings (seeded; the same for every loss, since
    every run embeds the same test images)."""
    e = load_embeddings(run_dir)
    pos = np.flatnonzero(e.get("is_query", np.ones(len(e["labels"]), bool)))
    return np.random.default_rng(seed).choice(pos, size=min(n, len(pos)), replace=False)


def gallery_figures(
    runs_dir: str | Path,
    losses: Sequence[str],
    seed: int,
    images: np.ndarray,
    class_names: Sequence[str],
    *,
    n_queries: int = 4,
    k: int = 6,
) -> list[Figure]:
    """One figure per query: a row per loss (run ``seed``) with the query and its top ``k``.
    ``images`` and ``class_names`` are indexed by prepared-dataset row."""
    runs = [run_path(runs_dir, loss, seed) for loss in losses]
    figures = []
    for i, q in enumerate(pick_queries(runs[0], n_queries)):
        found = [gallery_neighbors(run, np.array([q]), k) for run in runs]
        q_rows = np.array([f[0][0] for f in found])
        if len(set(q_rows.tolist())) != 1:
            raise ValueError(f"the runs of {list(losses)} embedded different test images")
        figures.append(
            retrieval_gallery(
                images[q_rows],
                images[np.stack([f[1][0] for f in found])],
                np.stack([f[2][0] for f in found]),
                row_titles=list(losses),
                suptitle=f"query {i + 1}: {class_names[q_rows[0]]}",
            )
        )
    return figures


def projection_figure(
    run_dir: str | Path, loss: str, method: str = "tsne", *, largest_coarse: bool = False
) -> Figure:
    """2-D projection of one run's test embeddings in the run's own metric, coloured by coarse
    label where the dataset has them (else by class); ``largest_coarse``: only the largest
    coarse class, coloured by fine class."""
    e = load_embeddings(run_dir)
    metric = load_run(run_dir)["metric"]
    coarse = bool((e["coarse_labels"] >= 0).all())
    if largest_coarse:
        if not coarse:
            raise ValueError(f"{run_dir}: largest_coarse needs coarse labels; this run has none")
        keep = e["coarse_labels"] == np.bincount(e["coarse_labels"]).argmax()
        return projection_2d(
            e["embeddings"][keep],
            e["labels"][keep],
            method=method,
            metric=metric,
            title=f"{loss}: {method} of one test coarse class, coloured by fine class",
        )
    return projection_2d(
        e["embeddings"],
        e["coarse_labels"] if coarse else e["labels"],
        method=method,
        metric=metric,
        title=f"{loss}: {method} of the test embeddings ({'coarse' if coarse else 'fine'} labels)",
    )
