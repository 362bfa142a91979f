"""Reproducible float64 re-scoring of k-NN candidates, and the error bound that makes it exact.

:func:`exact_keys` scores (query, gallery) pairs from the float32 inputs with elementwise
float64 numpy operations only (products or differences, squares, then a pairwise sum over
dimensions whose tree depends on ``dim`` alone). Each such operation is one correctly rounded
IEEE operation, so a key is a pure function of the two rows: bitwise the same for any batch,
chunking, BLAS library or CPU (BLAS/einsum would not be: their summation order varies).
:func:`score_error_bound` bounds |score - key| for a score computed in float32 or float64 in
ANY summation order, with or without FMA (Higham 2002, "Accuracy and Stability of Numerical
Algorithms", eq. 3.5: |fl(x.y) - x.y| <= gamma_d sum |x_i y_i|, gamma_d = d u / (1 - d u)).
"""

from __future__ import annotations

import numpy as np

ERROR_SAFETY = 2.0  # the bound below is about half of tau (gamma_d + a few extra roundings)
BLOCK_ELEMENTS = 1 << 18  # float64 elements per temporary block (2 MiB, cache-sized: fastest)


def _tree_sum(a: np.ndarray) -> np.ndarray:
    """Sum the last axis in place by a fixed pairwise tree (the order depends only on its length).

    >>> _tree_sum(np.array([[1.0, 2.0, 3.0, 4.0, 5.0]])).tolist()  # ((1+3)+(2+4))+5
    [15.0]
    """
    n = a.shape[-1]
    while n > 1:
        half = n // 2
        a[..., :half] += a[..., half : 2 * half]  # elementwise: no reordering possible
        if n % 2:
            a[..., half] = a[..., 2 * half]
        n = half + n % 2
    return a[..., 0]


def exact_keys(query: np.ndarray, gallery: np.ndarray, idx: np.ndarray, metric: str) -> np.ndarray:
    """Float64 keys (smaller = nearer) of query row i against gallery rows ``idx[i]``.

    cosine: ``-sum_d q_d g_d`` (products of float32 numbers are exact in float64);
    euclidean: ``sum_d (q_d - g_d)^2``. Memory is bounded by blocks of BLOCK_ELEMENTS.

    >>> q, g = np.array([[1, 2]], np.float32), np.array([[1, 2], [3, 5]], np.float32)
    >>> exact_keys(q, g, np.array([[1, 0]]), "euclidean").tolist()
    [[13.0, 0.0]]
    >>> exact_keys(q, g, np.array([[1]]), "cosine").tolist()
    [[-13.0]]
    """
    rows, cols = idx.shape
    dim = query.shape[1]
    out = np.empty((rows, cols), dtype=np.float64)
    col_step = max(1, min(cols, BLOCK_ELEMENTS // dim))
    row_step = max(1, BLOCK_ELEMENTS // (dim * col_step))
    for r0 in range(0, rows, row_step):
        q = query[r0 : r0 + row_step, None, :].astype(np.float64)
        for c0 in range(0, cols, col_step):
            block = gallery[idx[r0 : r0 + row_step, c0 : c0 + col_step]].astype(np.float64)
            if metric == "cosine":
                block *= q
            else:
                block -= q  # (g - q)^2 == (q - g)^2 exactly: rounding is sign-symmetric
                block *= block
            total = _tree_sum(block)
            out[r0 : r0 + row_step, c0 : c0 + col_step] = -total if metric == "cosine" else total
    return out


def row_norms(x: np.ndarray) -> np.ndarray:
    """Euclidean norm of every row in float64, in row blocks (feeds the error bound only, whose
    2x margin dwarfs this sum's rounding, so its summation order does not matter)."""
    step = max(1, BLOCK_ELEMENTS // x.shape[1])
    blocks = (x[i : i + step].astype(np.float64) for i in range(0, len(x), step))
    return np.sqrt(np.concatenate([np.einsum("ij,ij->i", b, b) for b in blocks]))


def score_error_bound(
    query_norms: np.ndarray, gallery_max_norm: float, dim: int, metric: str, dtype: type
) -> np.ndarray:
    """tau per query: |score - :func:`exact_keys` key| <= tau for every gallery row, for a
    score computed in ``dtype`` (float32 or float64) in any order (faiss, BLAS, numpy).

    cosine (dot product): gamma_d |q| |g|; euclidean, BLAS form |q|^2 + |g|^2 - 2 q.g or SIMD
    form sum (q_d - g_d)^2: (gamma_d + 3u) (|q| + |g|)^2, with max |g| over the gallery.
    The key's own error is as large for a float64 score (negligible for float32), so
    tau = ERROR_SAFETY * ((1 or 2) * (d + 4) * u * scale + d * tiny), u = 2^-24 or 2^-53;
    d * tiny (smallest normal number) covers products that underflow or are flushed to zero.

    >>> tau = score_error_bound(np.array([1.0]), 1.0, 508, "cosine", np.float32)
    >>> float(tau[0]) == 2 * (512 * 2**-24 + 508 * 2**-126)
    True
    """
    single = np.dtype(dtype) == np.float32
    if not single and np.dtype(dtype) != np.float64:
        raise ValueError(f"dtype must be float32 or float64; got {dtype}")
    unit = 2.0**-24 if single else 2.0**-53
    gamma = (1 if single else 2) * (dim + 4) * unit
    norms = np.asarray(query_norms, dtype=np.float64)
    scale = norms * gallery_max_norm if metric == "cosine" else (norms + gallery_max_norm) ** 2
    return ERROR_SAFETY * (gamma * scale + dim * float(np.finfo(dtype).tiny))
