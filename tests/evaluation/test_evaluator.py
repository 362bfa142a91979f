"""evaluate(): keys, modes, k depth, NMI, warnings and errors."""

from __future__ import annotations

import numpy as np
import pytest

from dmlstudy.evaluation import evaluate, nmi


def data(seed=0, n=120, classes=10, dim=12):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    return rng.normal(size=(classes, dim))[labels] + 0.8 * rng.normal(size=(n, dim)), labels


def test_keys_types_and_nmi_matches_nmi_function():
    x, labels = data()
    out = evaluate(x, labels, seed=5)
    assert list(out) == [
        "recall@1",
        "recall@2",
        "recall@4",
        "recall@8",
        "map@r",
        "r_precision",
        "nmi",
    ]
    assert all(type(v) is float and 0.0 <= v <= 1.0 for v in out.values())
    assert out["recall@1"] <= out["recall@2"] <= out["recall@4"] <= out["recall@8"]
    assert out["nmi"] == nmi(x, labels, seed=5)
    assert "nmi" not in evaluate(x, labels, with_nmi=False)


def test_deterministic_and_chunk_independent():
    x, labels = data(1)
    ref = evaluate(x, labels)
    assert evaluate(x, labels) == ref
    assert evaluate(x, labels, chunk_size=7) == ref


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("faiss_scores", ["as computed", "off by a few ulps"])
def test_metrics_identical_for_any_chunking_on_duplicates(
    metric, faiss_scores, oracle, perturbed_faiss
):
    """Recall@K, MAP@R and R-Precision are IDENTICAL for chunk sizes 1, 7, 64 and all at once
    on data full of exact and near duplicates with mixed labels (their order decides the
    metrics), also when faiss's scores differ in the last bits (another BLAS path or CPU)."""
    rng = np.random.default_rng(11)
    x = np.concatenate([oracle.near_tie_data(rng, n=120), rng.normal(size=(40, 6))])
    labels = rng.integers(0, 8, len(x))
    q = oracle.near_tie_data(rng, n=30)
    q_labels = rng.integers(0, 8, len(q))
    gallery = {"gallery_embeddings": x, "gallery_labels": labels}
    ref = evaluate(x, labels, metric=metric, with_nmi=False)
    ref_qg = evaluate(q, q_labels, metric=metric, with_nmi=False, **gallery)
    for seed, chunk in enumerate((1, 7, 64, len(x))):
        if faiss_scores != "as computed":
            perturbed_faiss(seed)
        assert evaluate(x, labels, metric=metric, with_nmi=False, chunk_size=chunk) == ref
        out_qg = evaluate(q, q_labels, metric=metric, with_nmi=False, chunk_size=chunk, **gallery)
        assert out_qg == ref_qg


def test_k_depth_covers_largest_class(oracle):
    """R = 60 > max(recall_at): MAP@R must use all 60 neighbours (exact, as the paper says)."""
    rng = np.random.default_rng(2)
    labels = np.concatenate([np.zeros(61, dtype=int), rng.integers(1, 5, 40)])
    x = rng.normal(size=(101, 6))
    out = evaluate(x, labels, recall_at=(1,), with_nmi=False, metric="euclidean")
    ref = oracle.paper_metrics(
        oracle.brute_ranking(x, metric="euclidean")[0], labels, recall_at=(1,)
    )
    assert out == pytest.approx(ref, abs=1e-12)
    with pytest.warns(RuntimeWarning, match="MAP@min"):
        capped = evaluate(x, labels, recall_at=(1,), with_nmi=False, metric="euclidean", max_k=10)
    assert capped["map@r"] != pytest.approx(out["map@r"])


def test_euclidean_is_not_cosine():
    """Euclidean uses raw norms (RSW): scaling one class changes euclidean, not cosine."""
    x, labels = data(3)
    scaled = x * np.where(labels == 0, 25.0, 1.0)[:, None]
    kw = dict(with_nmi=False)
    assert evaluate(scaled, labels, **kw) == evaluate(x, labels, **kw)
    assert evaluate(scaled, labels, metric="euclidean", **kw) != evaluate(
        x, labels, metric="euclidean", **kw
    )


def test_errors_name_the_fix():
    x, labels = data()
    with pytest.raises(ValueError, match="valid choices"):
        evaluate(x, labels, metric="l2")
    with pytest.raises(ValueError, match="both gallery_embeddings and gallery_labels"):
        evaluate(x, labels, gallery_embeddings=x)
    with pytest.raises(ValueError, match="one entry per embedding"):
        evaluate(x, labels[:-1])
    with pytest.raises(ValueError, match="more neighbours than the 3 available"):
        evaluate(x[:4], labels[:4], recall_at=(1, 8))
    with pytest.raises(ValueError, match="positive ints"):
        evaluate(x, labels, recall_at=())
    with pytest.raises(ValueError, match="no query has a same-label item"):
        evaluate(x[:3], np.arange(3), recall_at=(1,))
    with pytest.raises(ValueError, match="gallery dim"):
        evaluate(x, labels, gallery_embeddings=x[:, :3], gallery_labels=labels)
