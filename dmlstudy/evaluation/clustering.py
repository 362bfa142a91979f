"""Clustering quality: NMI of k-means clusters against the class labels.

NMI as in Musgrave et al. 2020 / pytorch-metric-learning's ``AccuracyCalculator``: k-means with
as many clusters as there are classes (faiss ``Kmeans``, default 20 iterations, as PML's
``FaissKMeans(niter=20)``), then scikit-learn's ``normalized_mutual_info_score`` (arithmetic
normalization). Choices that differ from faiss's defaults, and why:

* ``seed`` is explicit, so NMI is a deterministic function of (embeddings, seed).
* ``max_points_per_centroid`` is raised so faiss never sub-samples the training points
  (its default 256 would train on a random subset for datasets with few classes).
* ``min_points_per_centroid=1`` silences faiss's "please provide at least 39*k points" warning:
  DML test sets have few points per class (SOP: ~5), which is what the metric is about.
* Cosine embeddings are L2-normalized and clustered with spherical k-means
  (centroids re-normalized), so clusters follow the same geometry as retrieval.
"""

from __future__ import annotations

import faiss
import numpy as np

from dmlstudy.evaluation.retrieval import prepare_embeddings

DEFAULT_NITER = 20


def kmeans_assign(
    x: np.ndarray,
    n_clusters: int,
    *,
    seed: int = 0,
    niter: int = DEFAULT_NITER,
    spherical: bool = False,
) -> np.ndarray:
    """Cluster id (0..n_clusters-1) of every row of float32 ``x`` after faiss k-means.

    >>> x = np.array([[0.0], [0.1], [5.0], [5.1]], dtype=np.float32)
    >>> a = kmeans_assign(x, 2, seed=0)
    >>> bool(a[0] == a[1] and a[2] == a[3] and a[0] != a[2])
    True
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not 1 <= n_clusters <= len(x):
        raise ValueError(
            f"n_clusters={n_clusters} must be between 1 and the number of points {len(x)}"
        )
    if n_clusters == 1:
        return np.zeros(len(x), dtype=np.int64)
    km = faiss.Kmeans(
        x.shape[1],
        int(n_clusters),
        niter=int(niter),
        seed=int(seed),
        spherical=bool(spherical),
        min_points_per_centroid=1,
        max_points_per_centroid=max(256, -(-len(x) // n_clusters)),
        verbose=False,
    )
    km.train(x)
    _, assign = km.index.search(x, 1)
    return assign[:, 0].astype(np.int64)


def nmi(
    embeddings: np.ndarray,
    labels: np.ndarray,
    *,
    metric: str = "cosine",
    seed: int = 0,
    niter: int = DEFAULT_NITER,
) -> float:
    """NMI between the labels and k-means clusters (k = number of distinct labels).

    >>> x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    >>> nmi(x, np.array([0, 0, 1, 1]))
    1.0
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != len(embeddings):
        raise ValueError(
            f"labels must be 1-D with one entry per embedding; got shape {labels.shape}"
        )
    return nmi_prepared(prepare_embeddings(embeddings, metric), labels, metric, seed, niter)


def nmi_prepared(x: np.ndarray, labels: np.ndarray, metric: str, seed: int, niter: int) -> float:
    """NMI on embeddings already prepared by ``prepare_embeddings`` (no re-normalization)."""
    clusters = kmeans_assign(
        x, len(np.unique(labels)), seed=seed, niter=niter, spherical=metric == "cosine"
    )
    from sklearn.metrics import normalized_mutual_info_score  # lazy: ~1 s of import per stage

    return float(normalized_mutual_info_score(labels, clusters))
