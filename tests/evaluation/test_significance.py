"""Class-bootstrap intervals, paired tests over classes and seeds, Holm adjustment."""

from __future__ import annotations

import numpy as np
import pytest

from dmlstudy.evaluation import evaluate, per_query_metrics
from dmlstudy.evaluation.significance import (
    class_bootstrap,
    holm,
    paired_class_test,
)


def test_per_query_metrics_average_to_evaluate():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(12), 5)
    x = rng.normal(size=(60, 6)) + labels[:, None] % 3
    labels[0] = 99  # a lone query is left out of both
    pq = per_query_metrics(x, labels)
    ref = evaluate(x, labels, with_nmi=False)
    assert len(pq["labels"]) == 59 and 99 not in pq["labels"]
    for key in ("recall@1", "map@r", "r_precision"):
        assert pq[key].mean() == pytest.approx(ref[key], abs=1e-12)


def test_class_bootstrap_matches_a_naive_resampling_loop():
    rng = np.random.default_rng(1)
    classes = np.repeat(np.arange(30), rng.integers(2, 6, 30))
    values = rng.random(len(classes))
    mean, lo, hi = class_bootstrap(values, classes, n_boot=2000, seed=3)
    assert mean == pytest.approx(values.mean())
    # naive oracle: draw classes with replacement, concatenate their queries, take the mean
    naive_rng = np.random.default_rng(99)
    groups = [values[classes == c] for c in range(30)]
    boot = [
        np.concatenate([groups[i] for i in naive_rng.integers(0, 30, 30)]).mean()
        for _ in range(4000)
    ]
    ref_lo, ref_hi = np.quantile(boot, [0.025, 0.975])
    assert lo == pytest.approx(ref_lo, abs=0.012) and hi == pytest.approx(ref_hi, abs=0.012)
    assert class_bootstrap(values, classes, seed=3) == class_bootstrap(values, classes, seed=3)


def test_paired_class_test_detects_a_real_difference_and_not_a_null_one():
    rng = np.random.default_rng(2)
    classes = np.repeat(np.arange(200), 5)
    base = (rng.random(1000) < 0.6).astype(float)
    better = np.maximum(base, rng.random(1000) < 0.15)  # strictly more hits
    d, lo, hi, p = paired_class_test(better, base, classes, seed=0)
    assert d > 0 and lo > 0 and p < 0.01
    noise = (rng.random(1000) < 0.6).astype(float)
    d, lo, hi, p = paired_class_test(noise, base, classes, seed=0)
    assert lo < 0 < hi and p > 0.05
    assert paired_class_test(base, base, classes, seed=0) == (0.0, 0.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="same queries"):
        paired_class_test(base, base[:-1], classes, seed=0)


def test_paired_class_test_p_value_is_calibrated_under_the_null():
    """Under the null (exchangeable methods) p < 0.05 in about 5% of repetitions."""
    classes = np.repeat(np.arange(40), 4)
    rejections = 0
    for rep in range(200):
        rng = np.random.default_rng([5, rep])
        a, b = rng.random(160), rng.random(160)
        rejections += paired_class_test(a, b, classes, n_boot=500, seed=rep)[3] < 0.05
    assert 2 <= rejections <= 20


def test_holm_against_a_naive_loop():
    p = np.array([0.02, 0.001, 0.04, 0.03, 0.5])
    order = np.argsort(p)
    naive = np.empty(5)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (5 - rank) * p[i]))
        naive[i] = running
    np.testing.assert_allclose(holm(p), naive)
