"""Confidence intervals over seeds (Student t) (Musgrave et al. 2020 report mean and 95% CI over
runs)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def mean_ci(values: Sequence[float] | np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of the two-sided Student-t confidence interval of the mean.

    half_width = t_{(1+confidence)/2, n-1} * s / sqrt(n), with s the sample std (ddof=1).
    With a single value the interval is undefined: the half-width is ``nan`` (not 0, which
    would claim certainty); tables render it as "nan"/"n/a" and a one-seed study still renders.

    >>> m, h = mean_ci([1.0, 2.0, 3.0])
    >>> round(m, 3), round(h, 3)
    (2.0, 2.484)
    >>> mean_ci([0.5])
    (0.5, nan)
    """
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    if len(x) == 0:
        raise ValueError("mean_ci needs at least one value")
    if not np.isfinite(x).all():
        raise ValueError(f"mean_ci got non-finite values: {x.tolist()}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1); got {confidence}")
    mean = float(x.mean())
    if len(x) == 1:
        return mean, float("nan")
    sem = x.std(ddof=1) / np.sqrt(len(x))
    return mean, float(student_t().ppf((1.0 + confidence) / 2.0, len(x) - 1) * sem)


def student_t() -> Any:
    """``scipy.stats.t``, imported on first use (scipy.stats costs ~0.5 s of import per stage)."""
    from scipy import stats

    return stats.t
