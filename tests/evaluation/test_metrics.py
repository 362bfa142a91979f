"""Recall@K, MAP@R, R-Precision: pytorch-metric-learning's AccuracyCalculator and a per-query
loop from Musgrave et al. 2020 as oracles (random and adversarial cases)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dmlstudy.evaluation import count_relevant, evaluate, knn, map_at_r, r_precision, recall_at_k

pml_acc = pytest.importorskip("pytorch_metric_learning.utils.accuracy_calculator")
pml_inf = pytest.importorskip("pytorch_metric_learning.utils.inference")
PML_KEYS = {
    "precision_at_1": "recall@1",
    "mean_average_precision_at_r": "map@r",
    "r_precision": "r_precision",
}


def pml_metrics(query, labels, gallery=None, gallery_labels=None, metric="cosine", knn_func=None):
    """PML 2.x AccuracyCalculator with exact k (max bin count) on the same embeddings."""
    if knn_func is None:
        import faiss

        knn_func = pml_inf.FaissKNN(index_init_fn=faiss.IndexFlatIP if metric == "cosine" else None)
    prep = (
        (lambda a: a / np.linalg.norm(a, axis=1, keepdims=True))
        if metric == "cosine"
        else (lambda a: a)
    )
    calc = pml_acc.AccuracyCalculator(
        include=tuple(PML_KEYS), k="max_bin_count", device=torch.device("cpu"), knn_func=knn_func
    )
    res = calc.get_accuracy(
        torch.tensor(prep(query), dtype=torch.float32),
        torch.tensor(labels),
        None if gallery is None else torch.tensor(prep(gallery), dtype=torch.float32),
        None if gallery_labels is None else torch.tensor(gallery_labels),
    )
    return {ours: res[theirs] for theirs, ours in PML_KEYS.items()}


class OurKNN:
    """Our knn (documented tie rule) as PML's knn_func, so PML scores the same rankings."""

    def __init__(self, metric):
        self.metric = metric

    def __call__(self, query, k, reference, ref_includes_query=False):
        gallery = None if ref_includes_query else reference.numpy()
        idx, dist = knn(query.numpy(), k, gallery=gallery, metric=self.metric)
        return torch.from_numpy(dist), torch.from_numpy(idx)


def labels_with_singletons_and_big_classes(rng, n):
    """Singletons, pairs, and two classes much larger than the largest Recall@K."""
    labels = np.concatenate(
        [
            np.arange(5) + 100,
            np.repeat([200, 201], 2),
            np.repeat([300], 25),
            np.repeat([301], 15),
            rng.integers(0, 12, n - 49),
        ]
    )
    return rng.permutation(labels)


def assert_same(ours, ref):
    for key, value in ref.items():
        assert ours[key] == pytest.approx(value, abs=1e-9), key


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("seed", [0, 1])
def test_self_mode_random_vs_pml_and_paper(metric, seed, oracle):
    rng = np.random.default_rng(seed)
    labels = labels_with_singletons_and_big_classes(rng, 150)
    centers = rng.normal(size=(400, 16))
    x = centers[labels] * 0.6 + rng.normal(size=(150, 16)) + (3.0 if metric == "euclidean" else 0)
    ours = evaluate(x, labels, metric=metric, recall_at=(1, 2, 4, 8, 16), with_nmi=False)
    assert_same(ours, pml_metrics(x, labels, metric=metric))
    assert_same(
        ours,
        oracle.paper_metrics(
            oracle.brute_ranking(x, metric=metric)[0], labels, recall_at=(1, 2, 4, 8, 16)
        ),
    )
    assert 0.05 < ours["map@r"] < 0.95  # non-trivial case


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_query_gallery_mode_vs_pml_and_paper(metric, oracle):
    rng = np.random.default_rng(5)
    q_labels = rng.integers(0, 15, 60)
    g_labels = np.concatenate([rng.integers(0, 12, 90), np.repeat(3, 20)])  # 12..14 absent: lone
    centers = rng.normal(size=(15, 10))
    q = centers[q_labels] + rng.normal(size=(60, 10)) * 0.9
    g = centers[g_labels] + rng.normal(size=(110, 10)) * 0.9
    ours = evaluate(
        q, q_labels, gallery_embeddings=g, gallery_labels=g_labels, metric=metric, with_nmi=False
    )
    assert_same(ours, pml_metrics(q, q_labels, g, g_labels, metric=metric))
    ranking = oracle.brute_ranking(q, g, metric=metric)[0]
    assert_same(ours, oracle.paper_metrics(ranking, q_labels, g_labels))


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_exact_ties_with_mixed_labels(metric, oracle):
    """Duplicates carrying different labels: the order of tied items changes the metrics, so
    PML scores OUR ranking (its FaissKNN order on ties is faiss-specific) and the paper loop
    scores the brute-force ranking under the same (distance, index) rule."""
    rng = np.random.default_rng(11)
    x = oracle.tie_data(rng, n_distinct=10, n=90)
    labels = rng.integers(0, 9, 90)
    ours = evaluate(x, labels, metric=metric, with_nmi=False)
    assert_same(ours, pml_metrics(x, labels, metric=metric, knn_func=OurKNN(metric)))
    assert_same(ours, oracle.paper_metrics(oracle.brute_ranking(x, metric=metric)[0], labels))


def test_duplicates_within_a_class_match_pml_faiss():
    """Ties only among same-label items do not change the metrics: PML end to end agrees."""
    rng = np.random.default_rng(2)
    labels = np.repeat(np.arange(20), 4)
    x = np.repeat(rng.normal(size=(40, 8)), 2, axis=0)  # each item duplicated inside its class
    ours = evaluate(x, labels, with_nmi=False)
    assert_same(ours, pml_metrics(x, labels))
    assert ours["recall@1"] == 1.0 and ours["map@r"] < 1.0


def test_pure_functions_by_hand():
    hits = np.array(
        [[True, False, True, False], [False, False, False, True], [True, True, True, True]]
    )
    r = np.array([2, 1, 0])  # third query is lone: ignored
    assert recall_at_k(hits, r, 1) == 0.5 and recall_at_k(hits, r, 4) == 1.0
    assert r_precision(hits, r) == pytest.approx((0.5 + 0.0) / 2)
    assert map_at_r(hits, r) == pytest.approx((1.0 / 2 + 0.0) / 2)
    # R wider than the hit matrix: truncated to the width (PML's relevance mask does the same)
    assert map_at_r(np.array([[True, True]]), np.array([5])) == 1.0
    assert count_relevant(np.array([1, 1, 2])).tolist() == [1, 1, 0]


def test_metric_errors():
    with pytest.raises(ValueError, match="no query has a same-label item"):
        map_at_r(np.ones((2, 2), dtype=bool), np.zeros(2, dtype=int))
    with pytest.raises(ValueError, match="k=3 must be between 1 and the number of neighbours 2"):
        recall_at_k(np.ones((2, 2), dtype=bool), np.ones(2, dtype=int), 3)
    with pytest.raises(ValueError, match=r"hits must be \(n, k\)"):
        r_precision(np.ones(3, dtype=bool), np.ones(3, dtype=int))
