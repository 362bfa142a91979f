"""Intervals and paired tests for retrieval metrics over test classes (over seeds and classes
together: :mod:`dmlstudy.evaluation.hierarchical`).

Per-query values (a Recall@1 hit, an AP@R) are grouped by the query's class: the classes are the
sampling unit of a zero-shot test set, so resampling them (not single images) gives an interval
for "another draw of unseen classes" (it does not cover training randomness: that needs seeds).

* :func:`class_bootstrap` — percentile bootstrap CI of the mean over queries, classes resampled.
* :func:`paired_class_test` — two methods on the same queries: mean difference, its bootstrap CI
  (same resampled classes for both) and a sign-flip permutation p-value over classes.
* :func:`holm` — Holm-Bonferroni adjustment when one method is compared with several others.

Every function takes an explicit ``seed``: same inputs, same interval.

>>> rng = np.random.default_rng(0)
>>> classes = np.repeat(np.arange(50), 4)
>>> a = rng.random(200) < 0.7
>>> m, lo, hi = class_bootstrap(a, classes, seed=0)
>>> bool(lo < m < hi), round(m, 3)
(True, 0.635)
>>> paired_class_test(a, a, classes, seed=0)[3]
1.0
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

N_BOOT = 4000


def _class_sums(values: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    values = np.asarray(values, dtype=np.float64)
    classes = np.asarray(classes)
    if values.ndim != 1 or values.shape != classes.shape or len(values) == 0:
        raise ValueError(
            f"values and classes must be equal-length 1-D arrays; got {values.shape}, "
            f"{classes.shape}"
        )
    if not np.isfinite(values).all():
        raise ValueError("values must be finite")
    _, inverse = np.unique(classes, return_inverse=True)
    inverse = inverse.reshape(-1)
    return np.bincount(inverse, weights=values), np.bincount(inverse).astype(np.float64)


def _class_weights(n_classes: int, n_boot: int, seed: int) -> np.ndarray:
    """``n_boot`` bootstrap draws of the classes, as multiplicities (n_boot × n_classes)."""
    rng = np.random.default_rng([seed, 7919])
    return rng.multinomial(n_classes, np.full(n_classes, 1.0 / n_classes), size=n_boot)


def class_bootstrap(
    values: np.ndarray,
    classes: np.ndarray,
    *,
    confidence: float = 0.95,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(mean over queries, CI low, CI high): percentile bootstrap with classes resampled."""
    sums, counts = _class_sums(values, classes)
    w = _class_weights(len(sums), n_boot, seed)
    boot = (w @ sums) / (w @ counts)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(boot, [alpha, 1.0 - alpha])
    return float(sums.sum() / counts.sum()), float(lo), float(hi)


def paired_class_test(
    a: np.ndarray,
    b: np.ndarray,
    classes: np.ndarray,
    *,
    confidence: float = 0.95,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> tuple[float, float, float, float]:
    """(mean(a) − mean(b), CI low, CI high, two-sided p) for per-query values of two methods
    on the same queries. The CI resamples classes (both methods alike); the p-value flips the
    sign of each class's summed difference at random (``n_boot`` flips; exact under the null
    that a class's difference is symmetric about 0), floored at ``1 / (n_boot + 1)``."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"a and b must hold the same queries; got {a.shape} and {b.shape}")
    sums, counts = _class_sums(a - b, classes)
    diff = float(sums.sum() / counts.sum())
    w = _class_weights(len(sums), n_boot, seed)
    boot = (w @ sums) / (w @ counts)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(boot, [alpha, 1.0 - alpha])
    if not sums.any():
        return diff, float(lo), float(hi), 1.0
    signs = np.random.default_rng([seed, 104729]).choice([-1.0, 1.0], size=(n_boot, len(sums)))
    null = np.abs(signs @ sums) / counts.sum()
    p = (1.0 + np.count_nonzero(null >= abs(diff) - 1e-12)) / (n_boot + 1.0)
    return diff, float(lo), float(hi), float(min(1.0, p))


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (same order as given), controlling the family-wise error
    of several comparisons with one method.

    >>> holm([0.01, 0.04, 0.03]).round(3).tolist()
    [0.03, 0.06, 0.06]
    """
    p = np.asarray(pvalues, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate(p[order] * (len(p) - np.arange(len(p)))))
    out = np.empty_like(adjusted)
    out[order] = adjusted
    return out
