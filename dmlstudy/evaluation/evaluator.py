"""``evaluate``: Recall@K, MAP@R, R-Precision and NMI of an embedding set in one call.

Protocol (Musgrave et al. 2020, "A Metric Learning Reality Check"):

* query-is-gallery mode (CUB, Cars, SOP, Omniglot): every embedding is a query against all
  the others (itself left out by index);
* query/gallery mode (In-Shop): pass ``gallery_embeddings`` / ``gallery_labels``.

The k-NN depth is k = max(max(recall_at), max_i R_i), so MAP@R and R-Precision are exact.
Like pytorch-metric-learning 1.x (which capped k at 1023 for faiss-GPU) ``max_k`` caps the depth
for huge classes; when the cap truncates some R_i a ``RuntimeWarning`` says so and the
metrics become MAP@min(R, max_k). None of the study's datasets come near the cap (max R < 200).
NMI clusters the query embeddings against the query labels, as PML does; it costs a k-means
with one cluster per class (SOP scale: minutes on 2 cores), so pass ``with_nmi=False`` where
only retrieval is needed (e.g. per-epoch model selection).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from dmlstudy.evaluation.clustering import DEFAULT_NITER, nmi_prepared
from dmlstudy.evaluation.metrics import (
    count_relevant,
    map_at_r,
    per_query_map_at_r,
    per_query_r_precision,
    per_query_recall_at_k,
    r_precision,
    recall_at_k,
)
from dmlstudy.evaluation.retrieval import (
    DEFAULT_CHUNK_SIZE,
    check_metric,
    knn_prepared,
    prepare_embeddings,
)

DEFAULT_MAX_K = 1023


def _check_labels(labels: np.ndarray, n: int, name: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != n:
        raise ValueError(
            f"{name} must be 1-D with one entry per embedding ({n}); got shape {labels.shape}"
        )
    return labels


def evaluate(
    embeddings: np.ndarray,
    labels: np.ndarray,
    *,
    gallery_embeddings: np.ndarray | None = None,
    gallery_labels: np.ndarray | None = None,
    metric: str = "cosine",
    recall_at: Sequence[int] = (1, 2, 4, 8),
    with_nmi: bool = True,
    seed: int = 0,
    nmi_niter: int = DEFAULT_NITER,
    max_k: int = DEFAULT_MAX_K,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> dict[str, float]:
    """Retrieval and clustering metrics: keys ``recall@K`` (for K in recall_at), ``map@r``,
    ``r_precision`` and, unless ``with_nmi=False`` (then the key is absent), ``nmi``.

    ``metric="cosine"`` L2-normalizes; ``"euclidean"`` uses raw embeddings (RSW).
    Queries without any same-label gallery item are left out (see ``metrics``).

    >>> x = np.array([[0.0, 1.0], [0.1, 1.0], [1.0, 0.0], [1.0, 0.2]])
    >>> evaluate(x, np.array([0, 0, 1, 1]), recall_at=(1,))
    {'recall@1': 1.0, 'map@r': 1.0, 'r_precision': 1.0, 'nmi': 1.0}
    """
    recall_at = tuple(int(k) for k in recall_at)
    if not recall_at or min(recall_at) < 1:
        raise ValueError(f"recall_at must be a non-empty list of positive ints; got {recall_at}")
    query, labels, hits, num_relevant = _hits(
        embeddings,
        labels,
        gallery_embeddings,
        gallery_labels,
        metric,
        max(recall_at),
        max_k,
        chunk_size,
    )
    out = {f"recall@{r}": recall_at_k(hits, num_relevant, r) for r in recall_at}
    out["map@r"] = map_at_r(hits, num_relevant)
    out["r_precision"] = r_precision(hits, num_relevant)
    if with_nmi:
        out["nmi"] = nmi_prepared(query, labels, metric, seed, nmi_niter)
    return out


def per_query_metrics(
    embeddings: np.ndarray,
    labels: np.ndarray,
    *,
    gallery_embeddings: np.ndarray | None = None,
    gallery_labels: np.ndarray | None = None,
    metric: str = "cosine",
    max_k: int = DEFAULT_MAX_K,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> dict[str, np.ndarray]:
    """Per-query ``recall@1`` (0/1), ``map@r`` (AP@R) and ``r_precision`` of the queries that
    have a relevant item, with their ``labels``: the means are :func:`evaluate`'s values, and
    the arrays feed class-level intervals and paired tests
    (:mod:`dmlstudy.evaluation.significance`).

    >>> x = np.array([[0.0, 1.0], [0.1, 1.0], [1.0, 0.0], [1.0, 0.2], [-1.0, 0.0]])
    >>> per_query_metrics(x, np.array([0, 0, 1, 1, 7]))["recall@1"].tolist()
    [1.0, 1.0, 1.0, 1.0]
    """
    _, labels, hits, num_relevant = _hits(
        embeddings, labels, gallery_embeddings, gallery_labels, metric, 1, max_k, chunk_size
    )
    return {
        "labels": labels[num_relevant > 0],
        "recall@1": per_query_recall_at_k(hits, num_relevant, 1),
        "map@r": per_query_map_at_r(hits, num_relevant),
        "r_precision": per_query_r_precision(hits, num_relevant),
    }


def _hits(
    embeddings: np.ndarray,
    labels: np.ndarray,
    gallery_embeddings: np.ndarray | None,
    gallery_labels: np.ndarray | None,
    metric: str,
    min_k: int,
    max_k: int,
    chunk_size: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Prepared queries, their labels, the hit matrix to depth max(min_k, R) and R per query."""
    check_metric(metric)
    query = prepare_embeddings(embeddings, metric, "embeddings")
    labels = _check_labels(labels, len(query), "labels")
    if (gallery_embeddings is None) != (gallery_labels is None):
        raise ValueError("pass both gallery_embeddings and gallery_labels, or neither")
    gallery = None
    if gallery_embeddings is not None:
        gallery = prepare_embeddings(gallery_embeddings, metric, "gallery_embeddings")
        gallery_labels = _check_labels(gallery_labels, len(gallery), "gallery_labels")
        if gallery.shape[1] != query.shape[1]:
            raise ValueError(f"embedding dim {query.shape[1]} != gallery dim {gallery.shape[1]}")
    num_relevant = count_relevant(labels, gallery_labels)
    available = len(query) - 1 if gallery is None else len(gallery)
    if min_k > available:
        raise ValueError(
            f"recall_at asks for {min_k} neighbours: more neighbours than the {available} available"
        )
    max_r = int(num_relevant.max())
    if max_r > max_k:
        warnings.warn(
            f"largest class has R={max_r} relevant items > max_k={max_k}: MAP@R and R-Precision "
            f"are computed as MAP@min(R, {max_k}) (pass a larger max_k for exact values)",
            RuntimeWarning,
            stacklevel=3,
        )
    k = max(min_k, min(max_r, max_k), 1)
    idx, _ = knn_prepared(query, gallery, k, metric, chunk_size)
    ref_labels = labels if gallery is None else gallery_labels
    return query, labels, ref_labels[idx] == labels[:, None], num_relevant
