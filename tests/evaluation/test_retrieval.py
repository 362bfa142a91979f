"""Exact k-NN: brute-force agreement, leave-self-out by index, ties, chunking, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from dmlstudy.evaluation import knn


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("k", [1, 5, 29])
def test_self_mode_matches_brute_force(metric, k, oracle):
    rng = np.random.default_rng(k)
    x = rng.normal(size=(30, 8)).astype(np.float32) * 3 + 1
    idx, dist = knn(x, k, metric=metric)
    ref_idx, ref_keys = oracle.brute_ranking(x, metric=metric, k=k)
    np.testing.assert_array_equal(idx, ref_idx)
    assert not (idx == np.arange(30)[:, None]).any()
    ref_dist = 1 + ref_keys if metric == "cosine" else np.sqrt(ref_keys)
    np.testing.assert_allclose(dist, ref_dist, atol=1e-4)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_query_gallery_mode_matches_brute_force(metric, oracle):
    rng = np.random.default_rng(1)
    q, g = rng.normal(size=(25, 5)), rng.normal(size=(40, 5))
    idx, _ = knn(q, 7, gallery=g, metric=metric)
    np.testing.assert_array_equal(idx, oracle.brute_ranking(q, g, metric=metric, k=7)[0])
    idx_all, _ = knn(q, 40, gallery=g, metric=metric)  # k = whole gallery: no sentinel
    np.testing.assert_array_equal(idx_all, oracle.brute_ranking(q, g, metric=metric)[0])


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("k", [1, 3, 10, 79])
def test_exact_duplicates_follow_tie_rule(metric, k, oracle):
    """Ties (exact float32 duplicates) are ordered by lower gallery index, also across the
    k boundary; the query is left out by index even when duplicates tie with it."""
    rng = np.random.default_rng(7)
    x = oracle.tie_data(rng)
    idx, _ = knn(x, k, metric=metric)
    np.testing.assert_array_equal(idx, oracle.brute_ranking(x, metric=metric, k=k)[0])
    q = oracle.tie_data(rng, n=15)
    idx, _ = knn(q, k, gallery=x, metric=metric)
    np.testing.assert_array_equal(idx, oracle.brute_ranking(q, x, metric=metric, k=k)[0])


def test_boundary_ties_take_the_exact_path(monkeypatch, oracle):
    """The tie test above really crosses the k boundary (the numpy recompute runs)."""
    import dmlstudy.evaluation.retrieval as knn_module  # module, not the function

    calls = []
    real = knn_module._exact_rows
    monkeypatch.setattr(knn_module, "_exact_rows", lambda *a: calls.append(len(a[0])) or real(*a))
    x = oracle.tie_data(np.random.default_rng(7))
    idx, _ = knn(x, 3, metric="cosine")
    assert sum(calls) > 0
    np.testing.assert_array_equal(idx, oracle.brute_ranking(x, metric="cosine", k=3)[0])


def test_query_missing_from_its_own_results(monkeypatch, oracle):
    """Float rounding can rank near-duplicates above the query itself, pushing it out of the
    k+2 results; then the last result is dropped (never the best). Simulated with an index
    that never returns the query."""
    import faiss

    import dmlstudy.evaluation.retrieval as knn_module  # module, not the function

    class NoSelfIndex(faiss.IndexFlatL2):
        def search(self, q, k):
            d, i = super().search(q, k + 1)
            own = i == np.arange(len(q))[:, None]  # one chunk: row r is query r
            own[~own.any(1), -1] = True
            return d[~own].reshape(len(q), k), i[~own].reshape(len(q), k)

    monkeypatch.setattr(knn_module.faiss, "IndexFlatL2", NoSelfIndex)
    x = np.random.default_rng(0).normal(size=(40, 5))
    idx, _ = knn(x, 4, metric="euclidean")
    np.testing.assert_array_equal(idx, oracle.brute_ranking(x, metric="euclidean", k=4)[0])


def test_all_identical_embeddings():
    x = np.ones((50, 4), dtype=np.float32)
    idx, dist = knn(x, 3, metric="euclidean")
    expected = np.array([[j for j in range(50) if j != i][:3] for i in range(50)])
    np.testing.assert_array_equal(idx, expected)
    assert (dist == 0).all()


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_chunking_and_determinism(metric, oracle):
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(size=(60, 6)), oracle.tie_data(rng, n=40)])
    ref = knn(x, 6, metric=metric)
    again = knn(x, 6, metric=metric)
    np.testing.assert_array_equal(again[0], ref[0])
    np.testing.assert_array_equal(again[1], ref[1])  # bitwise, same call twice
    for chunk in (1, 7, 64, 10_000):
        out = knn(x, 6, metric=metric, chunk_size=chunk)
        np.testing.assert_array_equal(out[0], ref[0])
        # faiss uses BLAS for >= 20 queries and a SIMD loop below: last-bit differences only
        np.testing.assert_allclose(out[1], ref[1], rtol=0, atol=1e-5)


def test_faiss_ip_tie_order_is_not_ours():
    """Documents why rows are re-sorted: faiss IndexFlatIP lists tied items by descending index."""
    import faiss

    index = faiss.IndexFlatIP(2)
    index.add(np.tile(np.array([[1.0, 0.0]], dtype=np.float32), (5, 1)))
    _, faiss_idx = index.search(np.array([[1.0, 0.0]], dtype=np.float32), 3)
    ours, _ = knn(np.array([[1.0, 0.0]]), 3, gallery=np.tile([[1.0, 0.0]], (5, 1)))
    assert ours[0].tolist() == [0, 1, 2]
    assert faiss_idx[0].tolist() != [0, 1, 2]


def test_bad_inputs_raise_clear_errors():
    x = np.eye(3)
    with pytest.raises(ValueError, match="valid choices: cosine, euclidean"):
        knn(x, 1, metric="dot")
    with pytest.raises(ValueError, match="k=3 must be between 1 and 2"):
        knn(x, 3)
    with pytest.raises(ValueError, match="NaN or inf"):
        knn(np.array([[1.0, np.nan], [0.0, 1.0]]), 1)
    with pytest.raises(ValueError, match="zero norm"):
        knn(np.array([[0.0, 0.0], [0.0, 1.0]]), 1)
    with pytest.raises(ValueError, match="non-empty 2-D"):
        knn(np.ones(3), 1)
