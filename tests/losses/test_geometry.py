"""Toy-embedding forces equal the analytic gradient where one is easy to write down."""

from __future__ import annotations

import numpy as np
import pytest

from dmlstudy.losses.geometry import loss_forces, toy_batch


def test_contrastive_force_matches_hand_gradient():
    # two same-class points at distance d > pos_margin = 0 on the unit circle: the positive term
    # is d / 1 (one non-zero pair counted twice, averaged) and pulls them together.
    x = np.array([[1.0, 0.0], [0.0, 1.0]])
    f = loss_forces("contrastive", {"pos_margin": 0.0, "neg_margin": 0.5}, x, np.array([0, 0]))
    assert f.loss == pytest.approx(np.sqrt(2))
    # d/dx0 of ||x0/|x0| - x1/|x1||| at x0=(1,0): component along the tangent (0,1) only
    assert f.forces[0, 0] == pytest.approx(0.0, abs=1e-9) and f.forces[0, 1] > 0


def test_toy_batch_is_seeded():
    a, _ya = toy_batch(seed=3)
    b, _yb = toy_batch(seed=3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, toy_batch(seed=4)[0])
