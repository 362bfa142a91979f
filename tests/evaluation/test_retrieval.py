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
    """The tie test above really crosses the k boundary (rows are redone over the gallery)."""
    import dmlstudy.evaluation.retrieval as knn_module  # module, not the function

    calls = []
    real = knn_module._exact_rows
    monkeypatch.setattr(knn_module, "_exact_rows", lambda *a: calls.append(len(a[0])) or real(*a))
    x = oracle.tie_data(np.random.default_rng(7))
    idx, _ = knn(x, 3, metric="cosine")
    assert sum(calls) > 0
    np.testing.assert_array_equal(idx, oracle.brute_ranking(x, metric="cosine", k=3)[0])
    np.testing.assert_array_equal(idx, knn(x, 3, metric="cosine", chunk_size=7)[0])


def test_query_missing_from_its_own_results(monkeypatch, oracle):
    """Float rounding can rank near-duplicates above the query itself, pushing it out of
    faiss's results; the extra candidate then simply stays in (the query is left out by index,
    never by dropping a result). Simulated with an index that never returns the query."""
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
def test_chunking_and_determinism(metric, oracle, monkeypatch):
    """Indices AND distances are bitwise the same for every chunk size and for faiss's BLAS
    path (taken for >= distance_compute_blas_threshold queries) and its SIMD loop."""
    import faiss

    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(size=(60, 6)), oracle.near_tie_data(rng, n=40)])
    ref = knn(x, 6, metric=metric)
    again = knn(x, 6, metric=metric)
    np.testing.assert_array_equal(again[0], ref[0])
    np.testing.assert_array_equal(again[1], ref[1])  # bitwise, same call twice
    for threshold in (1, 10**9):
        monkeypatch.setattr(faiss.cvar, "distance_compute_blas_threshold", threshold)
        for chunk in (1, 7, 64, 10_000):
            out = knn(x, 6, metric=metric, chunk_size=chunk)
            np.testing.assert_array_equal(out[0], ref[0])
            np.testing.assert_array_equal(out[1], ref[1])


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("extra", [0, 8])
def test_last_bit_differences_in_faiss_scores_change_nothing(
    metric, extra, oracle, perturbed_faiss, monkeypatch
):
    """faiss scores off by a few ulps (another machine) give the same neighbours and distances,
    also when near-ties cross the k boundary and faiss leaves some of them out (the redo path);
    ``extra=0`` (no spare candidates) stresses the completeness check."""
    import dmlstudy.evaluation.retrieval as knn_module

    monkeypatch.setattr(knn_module, "EXTRA_CANDIDATES", extra)
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.normal(size=(30, 6)), oracle.near_tie_data(rng)])
    q = oracle.near_tie_data(rng, n=20)
    ref = knn(x, 5, metric=metric)
    ref_qg = knn(q, 5, gallery=x, metric=metric)
    if metric == "euclidean":  # float64 oracle of the same float32 inputs: same rule
        np.testing.assert_array_equal(ref[0], oracle.brute_ranking(x, metric=metric, k=5)[0])
        np.testing.assert_array_equal(ref_qg[0], oracle.brute_ranking(q, x, metric=metric, k=5)[0])
    for seed, chunk in enumerate((1, 7, 1000)):
        perturbed_faiss(seed)
        out = knn(x, 5, metric=metric, chunk_size=chunk)
        out_qg = knn(q, 5, gallery=x, metric=metric, chunk_size=chunk)
        for got, want in ((out, ref), (out_qg, ref_qg)):
            np.testing.assert_array_equal(got[0], want[0])
            np.testing.assert_array_equal(got[1], want[1])


def test_euclidean_power_of_two_scaling_changes_nothing_down_to_underflow(oracle):
    """Scaling by 2^e scales every float64 key exactly, so neighbours stay and distances scale
    exactly, also where float32 squared distances underflow (faiss sees zeros; rows redone)."""
    rng = np.random.default_rng(4)
    x = np.concatenate([rng.normal(size=(40, 6)), oracle.near_tie_data(rng, n=40)])
    x = x.astype(np.float32)
    ref_idx, ref_dist = knn(x, 5, metric="euclidean")
    for e in (-100, -70, 40):
        idx, dist = knn(x * np.float32(2.0**e), 5, metric="euclidean")
        np.testing.assert_array_equal(idx, ref_idx)
        np.testing.assert_array_equal(dist, ref_dist * np.float32(2.0**e))


def test_generic_data_needs_no_redo(monkeypatch):
    """Without near-ties at the boundary every row is complete from faiss's candidates."""
    import dmlstudy.evaluation.retrieval as knn_module

    calls = []
    monkeypatch.setattr(knn_module, "_exact_rows", lambda *a: calls.append(a))
    x = np.random.default_rng(0).normal(size=(300, 16))
    for metric in ("cosine", "euclidean"):
        knn(x, 10, metric=metric)
        knn(x[:50], 10, gallery=x, metric=metric)
    assert calls == []


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_duplicates_are_scored_once_in_redone_rows(metric, monkeypatch, oracle):
    """A redone row with many exact duplicates re-scores each distinct vector once, with the
    same result as scoring every item."""
    import dmlstudy.evaluation.retrieval as knn_module

    x = oracle.tie_data(np.random.default_rng(2), n_distinct=3, n=90)
    ref = knn(x, 4, metric=metric)  # 30 tied items per row < DEDUPE_AT: every item scored
    scored = []
    real = knn_module.exact_keys
    monkeypatch.setattr(knn_module, "DEDUPE_AT", 5)
    monkeypatch.setattr(
        knn_module, "exact_keys", lambda q, g, idx, m: scored.append(idx.size) or real(q, g, idx, m)
    )
    out = knn(x, 4, metric=metric)
    np.testing.assert_array_equal(out[0], ref[0])
    np.testing.assert_array_equal(out[1], ref[1])
    np.testing.assert_array_equal(out[0], oracle.brute_ranking(x, metric=metric, k=4)[0])
    assert (
        len(scored) > 1 and max(scored[1:]) <= 3
    )  # after faiss's candidates: at most the 3 distinct vectors


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
    with pytest.raises(ValueError, match="too large for float32 squared distances"):
        knn(np.array([[1e19, 0.0], [0.0, 1.0]]), 1, metric="euclidean")
