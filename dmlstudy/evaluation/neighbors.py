"""Per-query top-k neighbours with hit flags, for the retrieval galleries of report notebooks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dmlstudy.evaluation.retrieval import DEFAULT_CHUNK_SIZE, knn


@dataclass(frozen=True)
class Neighbors:
    """Per-query retrieval results for galleries in reports.

    Attributes:
        indices: (n, k) gallery row indices, best first.
        distances: (n, k) distances (cosine: 1 - similarity; euclidean: L2 distance).
        hits: (n, k) bool, True where the neighbour has the query's label.
    """

    indices: np.ndarray
    distances: np.ndarray
    hits: np.ndarray


def nearest_neighbors(
    embeddings: np.ndarray,
    labels: np.ndarray,
    k: int = 5,
    *,
    gallery_embeddings: np.ndarray | None = None,
    gallery_labels: np.ndarray | None = None,
    metric: str = "cosine",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Neighbors:
    """Top-k neighbours of every query with hit flags (query-is-gallery mode when no gallery).

    >>> nb = nearest_neighbors(np.array([[0.0], [1.0], [5.0]]), np.array([0, 0, 1]), 1,
    ...                        metric="euclidean")
    >>> nb.indices[:, 0].tolist(), nb.hits[:, 0].tolist()
    ([1, 0, 1], [True, True, False])
    """
    labels = np.asarray(labels)
    if (gallery_embeddings is None) != (gallery_labels is None):
        raise ValueError("pass both gallery_embeddings and gallery_labels, or neither")
    g_labels = labels if gallery_labels is None else np.asarray(gallery_labels)
    if len(labels) != len(embeddings) or len(g_labels) != len(
        embeddings if gallery_embeddings is None else gallery_embeddings
    ):
        raise ValueError("embeddings and labels must have the same length")
    idx, dist = knn(embeddings, k, gallery=gallery_embeddings, metric=metric, chunk_size=chunk_size)
    return Neighbors(indices=idx, distances=dist, hits=g_labels[idx] == labels[:, None])
