"""Intervals and paired tests that include training randomness: seeds *and* test classes.

A study's score is a mean over a seeds × test-classes grid: every seed of every loss is tested on
the same classes. Both are samples (another seed retrains the network; another draw of unseen
classes is another zero-shot test set), and they are *crossed*, not nested: a class that is hard
for one seed is hard for every seed. The variance of the grand mean of a paired difference is, in
the two-way random-effects model ``y[s, c] = Δ + a_s + b_c + e_sc``,

    Var = σ_a² / S + σ_b² / C + σ_e² / (S C),

and a test over classes alone (one seed, or the seeds' average) sees only the last two terms: with
the seed SD of a difference at ~1.6 MAP@R points it claims ~5 times less uncertainty than there
is.

* :func:`two_way_test` — the chosen method: the method-of-moments (ANOVA) estimate of that
  variance from the grid's mean squares, a Student-t interval and test with the *containment*
  degrees of freedom ``S − 1`` (the seed factor's: SAS PROC MIXED's default for this design),
  the t-test's two-sided p (a continuous value: no resampling floor), and the minimal
  detectable difference of the design (80% power). Closed form, so exact to the last digit and
  instant. Satterthwaite's df, estimated from the same mean squares, was the first choice and
  is rejected: where the seed term dominates (the study's case: seed SD of a difference ~1.6
  points against a class SE ~0.3), a low seed mean square both shrinks the SE and raises the
  df, so one test's size was 0.06–0.09 and Holm over 14 comparisons with the best rejected a
  true null in 10–41% of simulated studies; with ``S − 1`` the size is 0.03–0.05 there
  (``tests/evaluation/test_hierarchical.py``) and the family-wise rate of false "below the
  best" verdicts about 0.04, the best chosen from the data (``tests/analysis/test_compare.py``).
  The price: where the class term dominates (no seed effect) ``S − 1`` is conservative.
* :func:`hierarchical_bootstrap` — the two-stage bootstrap (resample seeds, then test classes
  within each resampled seed), kept as the comparator: with 5 seeds its percentile interval
  under-covers (resampling 5 values shrinks their variance by 4/5 and the percentile interval
  uses normal, not t, quantiles) and, nesting classes in seeds, it counts the class term
  σ_b² S times too small. ``tests/evaluation/test_hierarchical.py`` simulates studies with known
  truth and checks all three (class-only, two-stage bootstrap, two-way model).

Per-query values are grouped by class and weighted by each class's number of queries (the table's
mean is the mean over queries); the same queries are in every seed's test set.

>>> rng = np.random.default_rng(0)
>>> classes = np.arange(100)
>>> a = 0.40 + rng.normal(0, 0.01, (5, 1)) + rng.normal(0, 0.05, (5, 100))
>>> b = 0.38 + rng.normal(0, 0.01, (5, 1)) + rng.normal(0, 0.05, (5, 100))
>>> r = two_way_test(a, b, classes)
>>> round(100 * r.estimate, 1), r.low < r.estimate < r.high, r.n_seeds, r.n_classes
(2.1, True, 5, 100)
>>> format_p(1e-7), format_p(0.0312)
('p < 0.0001', 'p = 0.031')
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dmlstudy.evaluation.stats import student_t

#: below this a p-value is printed "p < 0.0001" (a display floor, not a resampling one)
P_FLOOR = 1e-4
#: the power of the minimal detectable difference, (t_{1−α/2} + t_{0.80}) SE with S − 1 df: about
#: 3.7 SE at 5 seeds and α = 0.05, 7.1 SE at Holm's first step over 14 comparisons (α/14)
POWER = 0.80


@dataclass(frozen=True)
class TwoWay:
    """One estimate (a method's mean, or the paired difference a − b) over seeds × classes."""

    estimate: float
    low: float
    high: float
    se: float  # standard error including seeds and classes
    df: float  # degrees of freedom of the t interval and test: S − 1 (classes − 1 for one seed)
    p: float  # two-sided t-test of estimate == 0 (meaningful for differences)
    mdd: float  # smallest true difference detected with 80% power at this alpha and design
    n_seeds: int
    n_classes: int
    seed_sd: float  # SD of the per-seed means (what another training run moves)
    class_se: float  # the SE a test over classes alone reports (seed-averaged values)


def _grid(
    a: np.ndarray, b: np.ndarray | None, classes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-seed per-class means of ``a − b`` (S × C) and the classes' query counts (C)."""
    x = np.asarray(a, dtype=np.float64)
    if b is not None:
        b = np.asarray(b, dtype=np.float64)
        if b.shape != x.shape:
            raise ValueError(
                f"a and b must hold the same seeds × queries; got {x.shape}, {b.shape}"
            )
        x = x - b
    x = np.atleast_2d(x)
    classes = np.asarray(classes).reshape(-1)
    if x.ndim != 2 or x.shape[1] != len(classes) or x.size == 0:
        raise ValueError(f"values must be seeds × queries with one class per query; got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("values must be finite")
    _, inverse = np.unique(classes, return_inverse=True)
    counts = np.bincount(inverse.reshape(-1)).astype(np.float64)
    sums = np.stack([np.bincount(inverse.reshape(-1), weights=row) for row in x])
    return sums / counts, counts


def two_way_test(
    a: np.ndarray,
    b: np.ndarray | None,
    classes: np.ndarray,
    *,
    confidence: float = 0.95,
    alpha: float = 0.05,
) -> TwoWay:
    """Mean of ``a`` (``b=None``) or of ``a − b`` over seeds × queries (arrays ``S × Q``, the
    same queries and seeds for both), its interval and test including seed and class variance.

    Each cell is the class's influence on the query-weighted mean, ``u = w_c (ȳ_sc − ȳ)`` with
    ``w_c`` the class's share of queries times C; from the two-way mean squares of ``u``,
    ``Var(ȳ) = (MS_seed + MS_class − MS_error) / (S C)`` (truncated below at the larger of the
    first two terms' own share, so it never goes negative). With one seed
    the seed term is unknown: the result is the class-only interval (``df`` over classes) and must
    be read as "one training run". The t has ``S − 1`` degrees of freedom (module docstring:
    why not Satterthwaite's). ``mdd`` = (t_{1−α/2} + t_{power}) × SE."""
    y, counts = _grid(a, b, classes)
    s, c = y.shape
    w = counts * c / counts.sum()
    est = float((y * w).mean())
    u = w * (y - est)
    row, col = u.mean(axis=1), u.mean(axis=0)
    ms_c = s * float(((col - u.mean()) ** 2).sum()) / max(c - 1, 1)
    class_se = float(np.sqrt(ms_c / (s * c))) if c > 1 else 0.0
    if s == 1:
        var, df = ms_c / c, float(max(c - 1, 1))
        seed_sd = float("nan")
    else:
        ms_s = c * float(((row - u.mean()) ** 2).sum()) / (s - 1)
        resid = u - row[:, None] - col[None, :] + u.mean()
        ms_e = float((resid**2).sum()) / max((s - 1) * (c - 1), 1)
        total = max(ms_s + ms_c - ms_e, ms_s, ms_c)
        var = total / (s * c)
        df = float(s - 1)  # containment df: the seed factor's (module docstring)
        seed_sd = float(np.sqrt(ms_s / c))
    se = float(np.sqrt(var))
    t = student_t()
    half = float(t.ppf((1.0 + confidence) / 2.0, df)) * se
    if se == 0.0:
        p = 1.0 if est == 0.0 else 0.0
    else:
        p = float(2.0 * t.sf(abs(est) / se, df))
    mdd = (float(t.ppf(1.0 - alpha / 2.0, df)) + float(t.ppf(POWER, df))) * se
    return TwoWay(est, est - half, est + half, se, df, p, mdd, s, c, seed_sd, class_se)


def hierarchical_bootstrap(
    a: np.ndarray,
    b: np.ndarray | None,
    classes: np.ndarray,
    *,
    confidence: float = 0.95,
    n_boot: int = 4000,
    seed: int = 0,
    chunk: int = 500,
) -> tuple[float, float, float, float, float]:
    """Two-stage bootstrap of the query-weighted mean of ``a`` (or ``a − b``), arrays ``S × Q``:
    each draw resamples the seeds, then the test classes independently within each drawn seed
    (paired: ``a`` and ``b`` share the draw). Returns (estimate, percentile CI low, high,
    two-sided bootstrap p, its floor ``2 / n_boot``); a p at the floor means "p < floor"."""
    y, counts = _grid(a, b, classes)
    s, c = y.shape
    sums = y * counts
    est = float(sums.sum() / (s * counts.sum()))
    rng = np.random.default_rng([seed, 15485863])
    boot = np.empty(n_boot)
    for start in range(0, n_boot, chunk):
        n = min(chunk, n_boot - start)
        idx = rng.integers(0, s, size=(n, s))  # the drawn seeds
        wc = rng.multinomial(c, np.full(c, 1.0 / c), size=(n, s)).astype(np.float64)
        num = np.einsum("nkc,nkc->n", wc, sums[idx])
        boot[start : start + n] = num / (wc @ counts).sum(axis=1)
    tail = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(boot, [tail, 1.0 - tail])
    floor = 2.0 / n_boot
    k = min(np.count_nonzero(boot <= 0.0), np.count_nonzero(boot >= 0.0))
    p = min(1.0, max(2.0 * k / n_boot, floor))
    return est, float(lo), float(hi), float(p), floor


def format_p(p: float, floor: float = P_FLOOR, alpha: float = 0.05) -> str:
    """Writes "p = 0.031", or "p < 0.0001" at or below ``floor`` (a resampling test's resolution, or
    the display floor of a continuous p); a p that two digits would round to ``alpha`` gets a
    third, so that which side of the verdict it lies on can be read.

    >>> format_p(0.0502), format_p(0.0498), format_p(0.05), format_p(0.37)
    ('p = 0.0502', 'p = 0.0498', 'p = 0.05', 'p = 0.37')
    """
    if p <= floor:
        return f"p < {floor:.2g}"
    text = f"{p:.2g}"
    if float(text) == alpha and p != alpha:
        text = f"{p:.3g}"
    return f"p = {text}"


def points(x: float, digits: int = 1, sign: bool = False) -> str:
    """A number as printed in the tables, never "-0.0": a value that rounds to zero has no sign,
    which would claim a direction the printed digits do not show. ``sign`` writes "+" on
    positive values (differences).

    >>> points(-0.04), points(-0.04, sign=True), points(-1.25, sign=True), points(2.0, sign=True)
    ('0.0', '0.0', '-1.2', '+2.0')
    """
    text = f"{x:+.{digits}f}"
    if float(text) == 0.0:
        return text[1:]
    return text if sign or text[0] == "-" else text[1:]


def closer_than(mdd: float, n_seeds: int) -> str:
    """What a tie can claim: "closer than 1.9 points at 5 seeds" (``mdd`` in fractions)."""
    return f"closer than {100 * mdd:.1f} points at {n_seeds} seed{'s' * (n_seeds != 1)}"


def spread_wording(mdd: float, n_seeds: int, reference: float) -> str:
    """Why a non-rejected difference is "inconclusive", not a tie: the design could not have
    detected even a drop to 0 from the reference (``mdd`` ≥ ``reference``, fractions).

    >>> spread_wording(1.111, 3, 0.450)  # doctest: +ELLIPSIS
    'the seeds spread too far: detectable difference 111.1 points at 3 seeds, not even a drop ...'
    >>> spread_wording(1.111, 3, 0.450)[-27:]
    'a drop to 0 from 45.0 shows'
    """
    return (
        f"the seeds spread too far: detectable difference {100 * mdd:.1f} points at {n_seeds} "
        f"seed{'s' * (n_seeds != 1)}, not even a drop to 0 from {100 * reference:.1f} shows"
    )


def beyond_reach(mdd: float, reference: float) -> bool:
    """Whether the design could not have detected even a drop to 0 from ``reference``
    (``mdd`` ≥ ``reference``, same units): a difference it did not reject is then
    inconclusive, not a tie."""
    return mdd >= reference


def inconclusive_wording(mdd: float, n_seeds: int, reference: float) -> str:
    """How such a difference reads: "inconclusive (the seeds spread too far: ...)" (fractions)."""
    return f"inconclusive ({spread_wording(mdd, n_seeds, reference)})"


def mdd_wording(mdd: float, n_seeds: int) -> str:
    """How a tie reads: "tied (closer than 1.9 points at 5 seeds)" (``mdd`` in fractions)."""
    return f"tied ({closer_than(mdd, n_seeds)})"
