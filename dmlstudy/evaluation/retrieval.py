"""Exact k-nearest-neighbour retrieval: faiss flat-index candidates, re-scored reproducibly.

Metrics (Musgrave et al. 2020, "A Metric Learning Reality Check", uses exact k-NN):
``"cosine"`` L2-normalizes (float32), ranks by dot product, distance ``1 - cos``;
``"euclidean"`` ranks raw embeddings by squared L2, distance its square root (as RSW does).

Rule: neighbours are ordered by (key, gallery index), lower index first among equal keys; the
key (cosine -q.g, euclidean |q - g|^2) is computed in float64 by :func:`rescore.exact_keys`
(fixed-order elementwise arithmetic on the float32 inputs: bitwise the same on every machine).
The query is left out BY INDEX, so its exact duplicates stay.
Algorithm: faiss returns the k + EXTRA_CANDIDATES (+ self) best by its float32 score f, and
|f - key| <= tau (:func:`rescore.score_error_bound`). A row is complete when its worst faiss
candidate has f - tau > the k-th candidate key: every item faiss left out then has a key above
k candidates'. Other rows are redone by a float64 GEMM over the whole gallery (score error
tau64): every item within 2 tau64 of the k-th smallest score (a superset of the top k) gets its
key. So indices AND distances do not depend on chunk_size, faiss's BLAS or SIMD path, or CPU.
Cost: faiss's search plus keys of its k + 8 (+ 1) candidates per row; a redone row costs a
float64 GEMM row plus its near-ties' keys (exact duplicates are scored once), and the first
one a float64 copy of the gallery.
"""

from __future__ import annotations

from typing import Literal

import faiss
import numpy as np

from dmlstudy.evaluation.rescore import exact_keys, row_norms, score_error_bound

Metric = Literal["cosine", "euclidean"]
METRICS: tuple[str, ...] = ("cosine", "euclidean")
DEFAULT_CHUNK_SIZE = 8192
EXTRA_CANDIDATES = 8  # faiss candidates beyond k (+ self): the margin that makes rows complete
EXACT_ROWS_BATCH = 256  # rows redone at once (float64 GEMM block: 256 x gallery, 124 MB at SOP)
DEDUPE_AT = 32  # a redone row with more near-tied items scores each distinct vector once
MAX_SQUARED_SCALE = 1e36  # euclidean (|q| + |g|)^2 must stay far below float32's max (3.4e38)


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


def keys_to_distances(keys: np.ndarray, metric: str) -> np.ndarray:
    """Float64 keys -> float32 distances (cosine: 1 - similarity; euclidean: L2 distance).

    >>> keys_to_distances(np.array([-1.0, -0.5]), "cosine").tolist()
    [0.0, 0.5]
    """
    if metric == "cosine":
        return (1.0 + keys).astype(np.float32)
    return np.sqrt(np.maximum(keys, 0.0)).astype(np.float32)


def _top_k(cand: np.ndarray, keys: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best of every row by (key, index); ``cand`` (rows, c) indices, ``keys`` float64."""
    order = np.lexsort((cand, keys), axis=-1)[:, :k]
    return np.take_along_axis(cand, order, axis=1), np.take_along_axis(keys, order, axis=1)


def _top_k_sorted_candidates(
    cand: np.ndarray, keys: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_top_k` of one row whose ``cand`` is ascending, in O(len(cand)): all keys below
    the k-th, then the lowest indices among keys equal to it.

    >>> _top_k_sorted_candidates(np.array([2, 5, 7, 9]), np.array([1.0, 0.0, 1.0, 1.0]), 3)
    (array([5, 2, 7]), array([0., 1., 1.]))
    """
    kth = np.partition(keys, k - 1)[k - 1]
    better = np.flatnonzero(keys < kth)
    chosen = np.concatenate([better, np.flatnonzero(keys == kth)[: k - len(better)]])
    order = np.lexsort((cand[chosen], keys[chosen]))
    return cand[chosen[order]], keys[chosen[order]]


def _duplicate_groups(gallery: np.ndarray) -> np.ndarray:
    """Id of each gallery row's distinct float32 vector (bytewise): equal rows, equal keys."""
    rows = gallery.view(np.dtype((np.void, gallery.itemsize * gallery.shape[1]))).ravel()
    return np.unique(rows, return_inverse=True)[1].reshape(-1)


def _exact_rows(
    queries: np.ndarray,
    gallery: np.ndarray,
    k: int,
    metric: str,
    self_idx: np.ndarray | None,
    tau64: np.ndarray,
    cache: dict[str, np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """Top k of a few rows over the whole gallery: float64 GEMM scores, every item within
    2 tau64 of the k-th smallest, exact keys for those. ``cache`` keeps the float64 gallery
    (float64, not float32: near-collapsed embeddings would tie every item within float32's tau)
    and :func:`_duplicate_groups` across calls."""
    if "gallery" not in cache:
        cache["gallery"] = gallery.astype(np.float64)
        cache["sq_norms"] = np.einsum("ij,ij->i", cache["gallery"], cache["gallery"])
    q64 = queries.astype(np.float64)
    f = q64 @ cache["gallery"].T
    if metric == "cosine":
        np.negative(f, out=f)
    else:
        f *= -2.0
        f += np.einsum("ij,ij->i", q64, q64)[:, None]
        f += cache["sq_norms"][None, :]
    if self_idx is not None:
        f[np.arange(len(queries)), self_idx] = np.inf
    kth = np.partition(f, k - 1, axis=1)[:, k - 1]
    idx = np.empty((len(queries), k), dtype=np.int64)
    keys = np.empty((len(queries), k), dtype=np.float64)
    for r in range(len(queries)):
        cand = np.flatnonzero(f[r] <= kth[r] + 2.0 * tau64[r])  # contains the top k (module)
        if len(cand) > DEDUPE_AT:
            if "groups" not in cache:
                cache["groups"] = _duplicate_groups(gallery)
            _, first, inverse = np.unique(
                cache["groups"][cand], return_index=True, return_inverse=True
            )
            cand_keys = exact_keys(queries[r : r + 1], gallery, cand[first][None, :], metric)
            cand_keys = cand_keys[:, inverse.reshape(-1)]
        else:
            cand_keys = exact_keys(queries[r : r + 1], gallery, cand[None, :], metric)
        idx[r], keys[r] = _top_k_sorted_candidates(cand, cand_keys[0], k)
    return idx, keys


def knn_prepared(
    query: np.ndarray, gallery: np.ndarray | None, k: int, metric: str, chunk_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """k-NN on prepared float32 arrays: ``(indices int64 (n, k), keys float64 (n, k))``, keys as
    in :func:`rescore.exact_keys`; ``gallery=None`` means leave-self-out mode."""
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
    q_norms = row_norms(query)
    g_max = float((q_norms if self_mode else row_norms(base)).max())
    if metric == "euclidean" and (float(q_norms.max()) + g_max) ** 2 > MAX_SQUARED_SCALE:
        raise ValueError(
            "embedding norms are too large for float32 squared distances "
            f"(max norm {max(float(q_norms.max()), g_max):.3g}); rescale the embeddings"
        )
    tau32, tau64 = (
        score_error_bound(q_norms, g_max, base.shape[1], metric, dtype)
        for dtype in (np.float32, np.float64)
    )
    index = (
        faiss.IndexFlatIP(base.shape[1]) if metric == "cosine" else faiss.IndexFlatL2(base.shape[1])
    )
    index.add(base)
    k_search = min(k + int(self_mode) + EXTRA_CANDIDATES, len(base))
    out_idx = np.empty((len(query), k), dtype=np.int64)
    out_keys = np.empty((len(query), k), dtype=np.float64)
    cache: dict[str, np.ndarray] = {}
    for start in range(0, len(query), chunk_size):
        q = query[start : start + chunk_size]
        rows = slice(start, start + len(q))
        scores, cand = index.search(q, k_search)
        if (cand < 0).any():
            raise RuntimeError(f"faiss returned fewer than {k_search} neighbours (k too large?)")
        keys = exact_keys(q, base, cand, metric)
        self_idx = np.arange(start, start + len(q)) if self_mode else None
        if self_idx is not None:
            keys[cand == self_idx[:, None]] = np.inf  # left out by index, never by distance
        out_idx[rows], out_keys[rows] = _top_k(cand, keys, k)
        if k_search == len(base):
            continue  # faiss returned the whole gallery: nothing was left out
        worst = (-scores.min(1) if metric == "cosine" else scores.max(1)).astype(np.float64)
        redo = np.flatnonzero(~(worst - tau32[rows] > out_keys[rows][:, k - 1]))
        for sub in (redo[i : i + EXACT_ROWS_BATCH] for i in range(0, len(redo), EXACT_ROWS_BATCH)):
            sub_self = None if self_idx is None else self_idx[sub]
            out_idx[start + sub], out_keys[start + sub] = _exact_rows(
                q[sub], base, k, metric, sub_self, tau64[start + sub], cache
            )
    return out_idx, out_keys


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
    idx, keys = knn_prepared(q, g, int(k), metric, int(chunk_size))
    return idx, keys_to_distances(keys, metric)
