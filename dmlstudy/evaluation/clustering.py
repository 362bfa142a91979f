"""Clustering quality: NMI of k-means clusters against the class labels.

NMI as in Musgrave et al. 2020 / pytorch-metric-learning's ``AccuracyCalculator``: k-means with
as many clusters as there are classes (faiss ``Kmeans``, default 20 iterations, as PML's
``FaissKMeans(niter=20)``), then scikit-learn's ``normalized_mutual_info_score`` (arithmetic
normalization), computed here by :func:`normalized_mutual_info` with scikit-learn's terms in its
order (tests check them against scikit-learn): importing scikit-learn (and the ``scipy.stats``
it pulls in) took 1.1 s of every training stage's start-up, where the score is one contingency
table. Choices that differ from faiss's defaults, and why:

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
    return normalized_mutual_info(labels, clusters)


def normalized_mutual_info(labels: np.ndarray, clusters: np.ndarray) -> float:
    """``sklearn.metrics.normalized_mutual_info_score(labels, clusters)`` (arithmetic mean of the
    entropies; natural log): its special cases and its sums, term by term in the same order, on
    the non-zero cells of the contingency table (row-major, as its sparse table).

    >>> normalized_mutual_info(np.array([0, 0, 1, 1]), np.array([1, 1, 0, 0]))
    1.0
    >>> normalized_mutual_info(np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1]))
    0.0
    >>> a, b = np.array([0, 0, 0, 1, 1, 1]), np.array([0, 0, 1, 1, 2, 2])
    >>> round(normalized_mutual_info(a, b), 6)  # scikit-learn: 0.5158037429793889
    0.515804
    """
    classes, a = np.unique(np.asarray(labels), return_inverse=True)
    found, b = np.unique(np.asarray(clusters), return_inverse=True)
    if len(classes) == len(found) <= 1:
        return 1.0  # both labellings without entropy: a perfect match (scikit-learn's case)
    cells, nz_val = np.unique(a.ravel() * len(found) + b.ravel(), return_counts=True)
    nzx, nzy = np.divmod(cells, len(found))
    pi = np.bincount(a.ravel(), minlength=len(classes)).astype(np.float64)
    pj = np.bincount(b.ravel(), minlength=len(found)).astype(np.float64)
    if pi.size == 1 or pj.size == 1:
        return 0.0  # one side has a single cluster: MI = 0
    nz_val = nz_val.astype(np.float64)
    total = nz_val.sum()
    log_contingency_nm = np.log(nz_val)
    contingency_nm = nz_val / total
    outer = pi.take(nzx).astype(np.int64) * pj.take(nzy).astype(np.int64)
    log_outer = -np.log(outer) + np.log(pi.sum()) + np.log(pj.sum())
    mi = contingency_nm * (log_contingency_nm - np.log(total)) + contingency_nm * log_outer
    mi = float(np.clip(np.where(np.abs(mi) < np.finfo(mi.dtype).eps, 0.0, mi).sum(), 0.0, None))
    if mi == 0:
        return 0.0
    normalizer = (_entropy(pi) + _entropy(pj)) / 2
    return float(mi / normalizer)


def _entropy(counts: np.ndarray) -> float:
    """scikit-learn's ``_entropy`` of a labelling from its cluster sizes (natural log)."""
    if counts.size == 1:
        return 0.0
    total = counts.sum()
    return float(-np.sum((counts / total) * (np.log(counts) - np.log(total))))
