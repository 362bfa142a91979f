"""Exact k-nearest-neighbour retrieval with faiss (flat indexes), chunked over queries.

Metrics (Musgrave et al. 2020, "A Metric Learning Reality Check", uses exact k-NN):

* ``"cosine"``: embeddings are L2-normalized and searched with ``faiss.IndexFlatIP``;
  the returned distance is ``1 - cosine similarity``.
* ``"euclidean"``: raw embeddings searched with ``faiss.IndexFlatL2`` (RSW evaluates this
  way); the returned distance is the Euclidean distance (square root of faiss's value).

Ordering and ties (deterministic rule): neighbours are sorted by (faiss score, gallery index),
best score first, and among exactly equal float32 scores the LOWER gallery index comes first.
faiss does not give this order itself (``IndexFlatIP`` returns tied items in descending index
order), so every row is re-sorted, and one extra neighbour is retrieved as a sentinel: when the
k-th and the (k+1)-th scores are equal the tie may extend past what faiss returned, and that
row is recomputed exactly over the whole gallery with numpy (same rule).

Leave-self-out ("query is gallery" mode): the query's own row index is removed from its result
list *by index*, never by distance, so exact duplicates of the query stay as neighbours. When
rounding pushes the query out of its own k+2 results, the last result is dropped instead
(as pytorch-metric-learning 2.x does).

Determinism: the same call gives bitwise identical results. Changing ``chunk_size`` can change
distances in the last float32 bit (faiss uses BLAS for >= 20 queries, a SIMD loop below) but
not the neighbour order except for scores that tie within that rounding. Chunking bounds
memory: faiss works on (chunk x gallery) blocks internally and results are (n x k).
Cost: one float32 GEMM (n x gallery x dim) plus faiss's heaps; rows whose ties cross the
boundary cost an extra numpy pass over the gallery each, so a fully collapsed embedding
(every row tied) costs about a second GEMM plus a partition per row.
"""

from __future__ import annotations

from typing import Literal

import faiss
import numpy as np

Metric = Literal["cosine", "euclidean"]
METRICS: tuple[str, ...] = ("cosine", "euclidean")
DEFAULT_CHUNK_SIZE = 8192
EXACT_ROWS_BATCH = 256  # rows recomputed with numpy at once when ties cross the k boundary


def check_metric(metric: str) -> None:
    """Raise a clear error unless ``metric`` is one of :data:`METRICS`."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; valid choices: {', '.join(METRICS)}")


def prepare_embeddings(embeddings: np.ndarray, metric: str, name: str = "embeddings") -> np.ndarray:
    """Validate and convert embeddings to C-contiguous float32, L2-normalized for cosine.

    >>> prepare_embeddings(np.array([[3.0, 4.0]]), "cosine")
    array([[0.6, 0.8]], dtype=float32)
    """
    check_metric(metric)
    x = np.asarray(embeddings)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array (n, dim); got shape {x.shape}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        bad = int(np.flatnonzero(~np.isfinite(x).all(axis=1))[0])
        raise ValueError(
            f"{name} contain NaN or inf (first bad row: {bad}); check the model output"
        )
    if metric == "cosine":
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        if (norms == 0).any():
            bad = int(np.flatnonzero(norms[:, 0] == 0)[0])
            raise ValueError(
                f"{name} row {bad} has zero norm; cosine similarity is undefined for it "
                "(use metric='euclidean' or fix the embedding)"
            )
        x = np.ascontiguousarray(x / norms, dtype=np.float32)
    return x


def _scores_to_distances(scores: np.ndarray, metric: str) -> np.ndarray:
    if metric == "cosine":
        return (1.0 - scores).astype(np.float32)
    return np.sqrt(np.maximum(scores, 0.0)).astype(np.float32)


def _exact_rows(
    queries: np.ndarray, gallery: np.ndarray, k: int, metric: str, self_idx: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force top-k over the whole gallery for a few rows, applying the tie rule exactly."""
    if metric == "cosine":
        keys = -(queries @ gallery.T)  # smaller key = better
    else:
        keys = (
            (queries * queries).sum(1, keepdims=True)
            + (gallery * gallery).sum(1)[None, :]
            - 2.0 * (queries @ gallery.T)
        )
    if self_idx is not None:
        keys[np.arange(len(queries)), self_idx] = np.inf
    kth = np.partition(keys, k - 1, axis=1)[:, k - 1]
    idx = np.empty((len(queries), k), dtype=np.int64)
    for r in range(len(queries)):
        better = np.flatnonzero(keys[r] < kth[r])
        equal = np.flatnonzero(keys[r] == kth[r])[: k - len(better)]  # lowest indices win ties
        row = np.concatenate([better, equal])
        idx[r] = row[np.lexsort((row, keys[r, row]))]
    rows_keys = np.take_along_axis(keys, idx, axis=1)
    return idx, (-rows_keys if metric == "cosine" else rows_keys)


def knn_prepared(
    query: np.ndarray, gallery: np.ndarray | None, k: int, metric: str, chunk_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """k-NN on already prepared float32 arrays; ``gallery=None`` means leave-self-out mode."""
    self_mode = gallery is None
    base = query if self_mode else gallery
    available = len(base) - int(self_mode)
    if not 1 <= k <= available:
        raise ValueError(
            f"k={k} must be between 1 and {available} (gallery size"
            f"{' minus the query itself' if self_mode else ''})"
        )
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1; got {chunk_size}")
    index = (
        faiss.IndexFlatIP(base.shape[1]) if metric == "cosine" else faiss.IndexFlatL2(base.shape[1])
    )
    index.add(base)
    # k results + the query itself (self mode) + one sentinel to detect ties at the boundary.
    k_search = min(k + int(self_mode) + 1, len(base))
    has_sentinel = k_search - int(self_mode) > k
    out_idx = np.empty((len(query), k), dtype=np.int64)
    out_scores = np.empty((len(query), k), dtype=np.float32)
    for start in range(0, len(query), chunk_size):
        q = query[start : start + chunk_size]
        scores, idx = index.search(q, k_search)
        keys = -scores if metric == "cosine" else scores
        order = np.lexsort((idx, keys), axis=-1)
        idx, scores, keys = (np.take_along_axis(a, order, axis=1) for a in (idx, scores, keys))
        self_idx = None
        if self_mode:
            self_idx = np.arange(start, start + len(q))
            drop = idx == self_idx[:, None]
            drop[~drop.any(axis=1), -1] = True  # query not retrieved (tied beyond): drop the last
            keep = ~drop
            idx, scores, keys = (a[keep].reshape(len(q), -1) for a in (idx, scores, keys))
        out_idx[start : start + len(q)] = idx[:, :k]
        out_scores[start : start + len(q)] = scores[:, :k]
        if has_sentinel:
            tied = np.flatnonzero(keys[:, k - 1] == keys[:, k])
            for sub in (
                tied[i : i + EXACT_ROWS_BATCH] for i in range(0, len(tied), EXACT_ROWS_BATCH)
            ):
                # bounded memory even when most rows tie (e.g. a collapsed embedding)
                exact_idx, exact_scores = _exact_rows(
                    q[sub], base, k, metric, None if self_idx is None else self_idx[sub]
                )
                out_idx[start + sub] = exact_idx
                out_scores[start + sub] = exact_scores
    return out_idx, out_scores


def knn(
    query: np.ndarray,
    k: int,
    *,
    gallery: np.ndarray | None = None,
    metric: str = "cosine",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest gallery items of every query: ``(indices int64 (n,k), distances float32)``.

    ``gallery=None`` searches the queries themselves, leaving each query out of its own list.
    Rows are sorted by distance, ties broken by lower gallery index (see module docstring).

    >>> x = np.array([[0.0], [1.0], [1.0], [3.0]])
    >>> idx, dist = knn(x, 2, metric="euclidean")
    >>> idx.tolist()  # row 1 and 2 are duplicates: each finds the other first
    [[1, 2], [2, 0], [1, 0], [1, 2]]
    >>> dist[0].tolist()
    [1.0, 1.0]
    """
    check_metric(metric)
    q = prepare_embeddings(query, metric, "query embeddings")
    g = None if gallery is None else prepare_embeddings(gallery, metric, "gallery embeddings")
    if g is not None and g.shape[1] != q.shape[1]:
        raise ValueError(f"query dim {q.shape[1]} != gallery dim {g.shape[1]}")
    idx, scores = knn_prepared(q, g, int(k), metric, int(chunk_size))
    return idx, _scores_to_distances(scores, metric)
