"""Reproducible float64 keys (fixed order, exact to rounding) and the float32 error bound."""

from __future__ import annotations

import math

import faiss
import numpy as np
import pytest

from dmlstudy.evaluation import rescore
from dmlstudy.evaluation.rescore import ERROR_SAFETY, exact_keys, row_norms, score_error_bound


def fsum_keys(q, g, idx, metric):
    """Correctly rounded keys by math.fsum over the float64 terms (an independent oracle)."""
    out = np.empty(idx.shape)
    for i, row in enumerate(idx):
        for j, col in enumerate(row):
            a, b = q[i].astype(np.float64), g[col].astype(np.float64)
            out[i, j] = -math.fsum(a * b) if metric == "cosine" else math.fsum((a - b) ** 2)
    return out


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("dim", [1, 5, 64, 301])
def test_exact_keys_match_fsum(metric, dim):
    rng = np.random.default_rng(dim)
    q = rng.normal(size=(6, dim)).astype(np.float32)
    g = (rng.normal(size=(20, dim)) * 10).astype(np.float32)
    idx = rng.integers(0, 20, size=(6, 9))
    keys = exact_keys(q, g, idx, metric)
    ref = fsum_keys(q, g, idx, metric)
    scale = np.abs(q).sum(1, keepdims=True) * np.abs(g).sum(1).max() * 10
    assert (np.abs(keys - ref) <= dim * 2.0**-53 * scale).all()


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_exact_keys_are_bitwise_independent_of_blocking(metric, monkeypatch):
    """A key depends only on its two rows: same bits whatever the rows, columns and blocks
    computed with it."""
    rng = np.random.default_rng(0)
    q = rng.normal(size=(7, 37)).astype(np.float32)
    g = rng.normal(size=(50, 37)).astype(np.float32)
    idx = rng.integers(0, 50, size=(7, 11))
    ref = exact_keys(q, g, idx, metric)
    for block in (1, 37, 100, 37 * 11 * 3):
        monkeypatch.setattr(rescore, "BLOCK_ELEMENTS", block)
        np.testing.assert_array_equal(exact_keys(q, g, idx, metric), ref)
    monkeypatch.undo()
    for i in range(7):
        for j in range(11):
            one = exact_keys(q[i : i + 1], g, idx[i : i + 1, j : j + 1], metric)
            assert one[0, 0] == ref[i, j]


def faiss_scores(q, g, metric):
    """float32 keys as faiss computes them (all pairs), smaller = nearer."""
    index = faiss.IndexFlatIP(g.shape[1]) if metric == "cosine" else faiss.IndexFlatL2(g.shape[1])
    index.add(g)
    d, i = index.search(q, len(g))
    keys = np.empty_like(d)
    np.put_along_axis(keys, i, -d if metric == "cosine" else d, axis=1)
    return keys


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("dim", [3, 64, 512])
@pytest.mark.parametrize("offset", [0.0, 100.0])
def test_scores_stay_within_the_bound_without_its_safety_factor(metric, dim, offset, monkeypatch):
    """faiss's SIMD and BLAS paths and numpy's float32 and float64 GEMMs are within
    tau / ERROR_SAFETY of the exact keys, also under cancellation (a large common offset and
    small distances): the bound's scale is right, and the safety factor is a pure margin."""
    rng = np.random.default_rng(dim)
    x = (offset + rng.normal(size=(60, dim)) * (0.01 if offset else 1.0)).astype(np.float32)
    if metric == "cosine":
        x /= np.linalg.norm(x, axis=1, keepdims=True)
    q, g = x[:25], x[25:]
    exact = exact_keys(q, g, np.tile(np.arange(len(g)), (len(q), 1)), metric)
    bound = {
        dtype: score_error_bound(row_norms(q), float(row_norms(g).max()), dim, metric, dtype)
        / ERROR_SAFETY
        for dtype in (np.float32, np.float64)
    }
    scores = []
    for threshold in (1, 10**9):  # BLAS path, SIMD loop
        monkeypatch.setattr(faiss.cvar, "distance_compute_blas_threshold", threshold)
        scores.append((np.float32, faiss_scores(q, g, metric)))
    for dtype in (np.float32, np.float64):
        a, b = q.astype(dtype), g.astype(dtype)
        if metric == "cosine":
            scores.append((dtype, -(a @ b.T)))
        else:
            scores.append(
                (dtype, (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * (a @ b.T))
            )
    for dtype, f in scores:
        err = np.abs(f.astype(np.float64) - exact).max(axis=1)
        assert (err <= bound[dtype]).all(), (dtype, (err / bound[dtype]).max())


def test_error_bound_scales():
    norms, tiny32, tiny64 = np.array([2.0]), 2.0**-126, 2.0**-1022
    cos32 = score_error_bound(norms, 3.0, 12, "cosine", np.float32)[0]
    assert cos32 == 2 * (16 * 2.0**-24 * 6 + 12 * tiny32)
    l2_32 = score_error_bound(norms, 3.0, 12, "euclidean", np.float32)[0]
    assert l2_32 == 2 * (16 * 2.0**-24 * 25 + 12 * tiny32)
    cos64 = score_error_bound(norms, 3.0, 12, "cosine", np.float64)[0]
    assert cos64 == 2 * (2 * 16 * 2.0**-53 * 6 + 12 * tiny64)
    with pytest.raises(ValueError, match="float32 or float64"):
        score_error_bound(norms, 3.0, 12, "cosine", np.float16)
