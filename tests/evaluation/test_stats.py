"""mean_ci: Student-t interval of the mean over seeds."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from dmlstudy.evaluation import mean_ci


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_matches_scipy_t_interval(confidence):
    values = np.random.default_rng(0).normal(0.6, 0.02, size=5)
    mean, half = mean_ci(values, confidence)
    lo, hi = stats.t.interval(
        confidence, len(values) - 1, loc=values.mean(), scale=stats.sem(values)
    )
    assert mean == pytest.approx(values.mean()) and half == pytest.approx((hi - lo) / 2)


def test_single_seed_has_nan_half_width_and_constant_values_zero():
    mean, half = mean_ci([0.7])
    assert mean == 0.7 and math.isnan(half)
    assert mean_ci([0.5, 0.5, 0.5]) == (0.5, 0.0)


def test_bad_input():
    with pytest.raises(ValueError, match="at least one value"):
        mean_ci([])
    with pytest.raises(ValueError, match="non-finite"):
        mean_ci([0.5, float("nan")])
    with pytest.raises(ValueError, match=r"confidence must be in \(0, 1\)"):
        mean_ci([0.5, 0.6], confidence=95)
