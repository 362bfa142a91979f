"""Contrastive loss: PML oracle, gradcheck, learning sanity, edge cases."""

from __future__ import annotations

import pytest
import torch
from pytorch_metric_learning import losses as pml

from dmlstudy.losses import build_loss, get_loss_class, loss_hyperparameters
from dmlstudy.losses.base import check_ranges
from tests.losses import pair_checks as checks


def test_defaults() -> None:
    assert loss_hyperparameters("contrastive") == {"pos_margin": 0.0, "neg_margin": 0.5}


@pytest.mark.parametrize(
    ("pos_margin", "neg_margin", "seed"), [(0.0, 0.5, 0), (0.1, 0.38, 1), (0.3, 1.2, 2)]
)
def test_matches_pml(pos_margin: float, neg_margin: float, seed: int) -> None:
    x, y = checks.make_batch(seed, per_class=3, num_classes=5, dim=6)
    ours = build_loss("contrastive", pos_margin=pos_margin, neg_margin=neg_margin)(x, y)
    theirs = pml.ContrastiveLoss(pos_margin=pos_margin, neg_margin=neg_margin)(x, y)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-8)


def test_gradcheck() -> None:
    x, y = checks.make_batch(3, per_class=2, num_classes=3, dim=4)
    checks.assert_gradcheck(build_loss("contrastive"), x, y)


def test_learns() -> None:
    checks.assert_learns(build_loss("contrastive"))


def test_edge_cases() -> None:
    loss = build_loss("contrastive")
    for x, y in checks.edge_batches().values():
        checks.assert_finite_with_grad(loss, x, y)
    x, _ = checks.edge_batches()["one_class"]
    checks.assert_zero(
        loss, torch.zeros_like(x[:1]) + 1.0, torch.zeros(1, dtype=torch.long)
    )  # no pairs
    far = torch.eye(4, dtype=torch.float64)  # singletons at distance √2 > m_neg: no active term
    checks.assert_zero(loss, far, torch.arange(4))
    x, y = checks.make_batch(5, per_class=3, num_classes=4, dim=5)
    checks.assert_permutation_invariant(loss, x, y)


@pytest.mark.parametrize("below", [-0.2, -1.0])
def test_a_pos_margin_below_0_trains_exactly_as_0(below: float) -> None:
    """Why 0 is pos_margin's own limit (its Range, so the campaign's boundary rule does not
    widen below it): every positive pair with d > 0 is pulled alike, so the gradients are
    equal and the loss moves by the constant −pos_margin only."""
    x, y = checks.make_batch(7, per_class=3, num_classes=4, dim=5)
    grads, values = [], []
    for m in (0.0, below):
        e = x.double().clone().requires_grad_(True)
        # the class itself, not build_loss: build_loss refuses a pos_margin below 0 (below)
        value = get_loss_class("contrastive")(pos_margin=m, neg_margin=0.7)(e, y)
        value.backward()
        grads.append(e.grad)
        values.append(value.item())
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-12, atol=1e-14)
    assert values[1] - values[0] == pytest.approx(-below, abs=1e-12)
    assert (
        "the same training: use 0"
        in check_ranges("contrastive", {"pos_margin": below})["pos_margin"]
    )
