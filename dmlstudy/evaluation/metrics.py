"""Retrieval metrics as pure numpy functions of a hit matrix.

``hits[i, j]`` is True when the j-th neighbour of query i has the query's label;
``num_relevant[i]`` is R_i, the number of gallery items with query i's label, the query itself
excluded (Musgrave et al. 2020, "A Metric Learning Reality Check").

Queries with R_i = 0 (singleton classes in query-is-gallery mode, or query classes absent from
the gallery) cannot retrieve anything correct; like pytorch-metric-learning's
``AccuracyCalculator`` ("lone" queries) they are left out of every metric. If no query is left,
the metrics raise instead of returning a number.

When the hit matrix is narrower than R_i (a k-NN cap), R_i is truncated to the width,
which is exactly what pytorch-metric-learning's relevance mask does; :func:`evaluate` warns.
"""

from __future__ import annotations

import numpy as np


def count_relevant(
    query_labels: np.ndarray, gallery_labels: np.ndarray | None = None
) -> np.ndarray:
    """R_i for every query: same-label gallery items, the query itself excluded.

    ``gallery_labels=None`` is query-is-gallery mode (count - 1).

    >>> count_relevant(np.array([0, 0, 0, 1, 2, 2])).tolist()
    [2, 2, 2, 0, 1, 1]
    >>> count_relevant(np.array([0, 3]), np.array([0, 0, 1])).tolist()
    [2, 0]
    """
    query_labels = np.asarray(query_labels)
    if gallery_labels is None:
        _, inverse, counts = np.unique(query_labels, return_inverse=True, return_counts=True)
        return counts[inverse.reshape(-1)].astype(np.int64) - 1
    uniq, counts = np.unique(np.asarray(gallery_labels), return_counts=True)
    pos = np.clip(np.searchsorted(uniq, query_labels), 0, len(uniq) - 1)
    found = uniq[pos] == query_labels
    return np.where(found, counts[pos], 0).astype(np.int64)


def _valid(hits: np.ndarray, num_relevant: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    hits = np.asarray(hits, dtype=bool)
    num_relevant = np.asarray(num_relevant, dtype=np.int64)
    if hits.ndim != 2 or num_relevant.shape != (hits.shape[0],):
        raise ValueError(
            f"hits must be (n, k) and num_relevant (n,); got {hits.shape} and {num_relevant.shape}"
        )
    keep = num_relevant > 0
    if not keep.any():
        raise ValueError(
            "no query has a same-label item in the gallery (all R = 0); retrieval metrics are "
            "undefined — check the labels / the query-gallery split"
        )
    return hits[keep], num_relevant[keep]


def per_query_recall_at_k(hits: np.ndarray, num_relevant: np.ndarray, k: int) -> np.ndarray:
    """Per valid query (R > 0): 1.0 when a correct item is among the top K, else 0.0."""
    hits, _ = _valid(hits, num_relevant)
    if not 1 <= k <= hits.shape[1]:
        raise ValueError(f"k={k} must be between 1 and the number of neighbours {hits.shape[1]}")
    return hits[:, :k].any(axis=1).astype(np.float64)


def recall_at_k(hits: np.ndarray, num_relevant: np.ndarray, k: int) -> float:
    """Recall@K: fraction of queries with at least one correct item among the top K.

    >>> hits = np.array([[False, True], [True, False], [False, False]])
    >>> recall_at_k(hits, np.array([1, 3, 2]), 1), recall_at_k(hits, np.array([1, 3, 2]), 2)
    (0.3333333333333333, 0.6666666666666666)
    """
    return float(per_query_recall_at_k(hits, num_relevant, k).mean())


def _relevance_mask(hits: np.ndarray, num_relevant: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r = np.minimum(num_relevant, hits.shape[1])
    mask = np.arange(hits.shape[1])[None, :] < r[:, None]
    return mask, r


def per_query_r_precision(hits: np.ndarray, num_relevant: np.ndarray) -> np.ndarray:
    """Per valid query: (correct items among the top R) / R."""
    hits, num_relevant = _valid(hits, num_relevant)
    mask, r = _relevance_mask(hits, num_relevant)
    return (hits & mask).sum(axis=1) / r


def r_precision(hits: np.ndarray, num_relevant: np.ndarray) -> float:
    """R-Precision = mean over queries of (correct items among the top R) / R (Musgrave et al.
    2020).

    >>> r_precision(np.array([[True, False, True], [False, True, True]]), np.array([2, 1]))
    0.25
    """
    return float(per_query_r_precision(hits, num_relevant).mean())


def per_query_map_at_r(hits: np.ndarray, num_relevant: np.ndarray) -> np.ndarray:
    """Per valid query: AP@R = (1/R) * sum_{i<=R} P(i) * hit_i."""
    hits, num_relevant = _valid(hits, num_relevant)
    mask, r = _relevance_mask(hits, num_relevant)
    rel = hits & mask
    precision = np.cumsum(rel, axis=1) / np.arange(1, hits.shape[1] + 1)[None, :]
    return (precision * rel).sum(axis=1) / r


def map_at_r(hits: np.ndarray, num_relevant: np.ndarray) -> float:
    """MAP@R = mean over queries of (1/R) * sum_{i<=R} P(i) * hit_i, P(i) = precision at i.

    Musgrave et al. 2020 (definition of MAP@R). Example: R = 3 and hits 1,0,1 gives
    (1/1 + 2/3) / 3 = 0.5556.

    >>> round(map_at_r(np.array([[True, False, True, True]]), np.array([3])), 4)
    0.5556
    """
    return float(per_query_map_at_r(hits, num_relevant).mean())
