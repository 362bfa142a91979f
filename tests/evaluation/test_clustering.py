"""NMI: faiss k-means + scikit-learn NMI, checked against PML's AccuracyCalculator."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import normalized_mutual_info_score

from dmlstudy.evaluation import kmeans_assign, nmi


def blobs(rng, n_classes=6, per_class=30, dim=8, spread=0.2):
    labels = np.repeat(np.arange(n_classes), per_class)
    centers = rng.normal(size=(n_classes, dim))
    return centers[labels] + spread * rng.normal(size=(len(labels), dim)), labels


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_separable_blobs_give_nmi_one(metric):
    """Two separable classes: Lloyd iterations always recover them. (With many classes, random
    initialization — faiss's and PML's — can merge two blobs: NMI carries init noise.)"""
    x, labels = blobs(np.random.default_rng(0), n_classes=2, spread=0.02)
    assert all(nmi(x, labels, metric=metric, seed=s) == pytest.approx(1.0) for s in range(4))


def test_random_labels_give_low_nmi_and_overlap_is_intermediate():
    rng = np.random.default_rng(1)
    x, labels = blobs(rng, spread=1.5)
    mixed = nmi(x, labels)
    assert nmi(x, rng.permutation(labels)) < 0.25 < mixed < 0.999


def test_deterministic_given_seed_and_seed_matters():
    rng = np.random.default_rng(2)
    x, labels = blobs(rng, n_classes=20, per_class=10, spread=1.2)
    assert nmi(x, labels, seed=3) == nmi(x, labels, seed=3)
    values = {nmi(x, labels, seed=s) for s in range(4)}
    assert len(values) > 1  # the seed really reaches faiss


def test_nmi_matches_pml_accuracy_calculator():
    """Same clustering function plugged into PML: its NMI pipeline gives the same number; with
    PML's own FaissKMeans(niter=20) on separable data both are 1."""
    acc = pytest.importorskip("pytorch_metric_learning.utils.accuracy_calculator")
    rng = np.random.default_rng(4)
    x, labels = blobs(rng, n_classes=8, per_class=12, spread=1.0)
    xn = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    ours_fn = lambda q, k: torch.from_numpy(kmeans_assign(q.numpy(), k, spherical=True))  # noqa: E731
    calc = acc.AccuracyCalculator(include=("NMI",), device=torch.device("cpu"), kmeans_func=ours_fn)
    pml_value = calc.get_accuracy(torch.from_numpy(xn), torch.from_numpy(labels))["NMI"]
    assert nmi(x, labels) == pytest.approx(pml_value, abs=1e-12)
    x_sep, l_sep = blobs(rng, n_classes=2, spread=0.01)
    calc = acc.AccuracyCalculator(include=("NMI",), device=torch.device("cpu"))
    res = calc.get_accuracy(torch.tensor(x_sep, dtype=torch.float32), torch.from_numpy(l_sep))
    assert res["NMI"] == pytest.approx(1.0) and nmi(
        x_sep, l_sep, metric="euclidean"
    ) == pytest.approx(1.0)


def test_kmeans_assign_uses_every_cluster_and_no_subsampling():
    rng = np.random.default_rng(5)
    x, labels = blobs(rng, n_classes=2, per_class=400, spread=0.05)  # 800 > 256 * 2 points
    a = kmeans_assign(x.astype(np.float32), 2, seed=0)
    assert normalized_mutual_info_score(labels, a) == pytest.approx(1.0)
    assert kmeans_assign(x.astype(np.float32), 1).tolist() == [0] * 800
    with pytest.raises(
        ValueError, match="n_clusters=9 must be between 1 and the number of points 8"
    ):
        kmeans_assign(x[:8].astype(np.float32), 9)


@pytest.mark.parametrize("seed", range(6))
def test_normalized_mutual_info_is_scikit_learns(seed):
    """The numpy score against scikit-learn's (the oracle) on random labellings of every shape,
    and on its special cases: both constant, one constant, independent, identical, permuted."""
    from dmlstudy.evaluation.clustering import normalized_mutual_info

    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 400))
    a = rng.integers(0, int(rng.integers(1, 60)), n) * 7 - 3  # any label values
    b = rng.integers(0, int(rng.integers(1, 60)), n)
    cases = [
        (a, b),
        (a, a),
        (a, 100 - a),
        (a, np.zeros(n, int)),
        (np.zeros(n, int), np.ones(n, int)),
        (np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1])),
    ]
    for x, y in cases:
        assert normalized_mutual_info(x, y) == pytest.approx(
            normalized_mutual_info_score(x, y), abs=1e-12
        )
