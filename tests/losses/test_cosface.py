"""CosFace (dmlstudy.losses.margin_softmax.CosFaceLoss) against pytorch-metric-learning and the
formula."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning.losses import CosFaceLoss as PMLCosFace

from dmlstudy.losses import loss_hyperparameters
from tests.losses.proxy_checks import (
    assert_edge_cases,
    assert_gradcheck,
    assert_learns,
    assert_param_groups,
    make_batch,
    make_loss,
)


def naive_cosface(x, y, weights, margin, scale):
    """Wang et al. 2018 eq. 4, loop by loop."""
    cos = (F.normalize(x, dim=1) @ F.normalize(weights, dim=1).T).tolist()
    total = 0.0
    for i, label in enumerate(y.tolist()):
        logits = [scale * (v - margin if c == label else v) for c, v in enumerate(cos[i])]
        top = max(logits)
        total += -(logits[label] - top - math.log(sum(math.exp(v - top) for v in logits)))
    return total / len(y)


def test_defaults_and_param_groups():
    assert loss_hyperparameters("cosface") == {
        "margin": 0.35,
        "scale": 64.0,
        "proxy_lr_multiplier": 1.0,
    }
    assert_param_groups(make_loss("cosface", 5, 4), 1.0)


@pytest.mark.parametrize("margin,scale", [(0.35, 64.0), (0.1, 5.0)])
def test_matches_pml_and_formula(margin, scale):
    loss = make_loss("cosface", 6, 8, margin=margin, scale=scale)
    pml = PMLCosFace(6, 8, margin=margin, scale=scale).double()
    pml.W.data.copy_(loss.proxies.data.T)
    x, y = make_batch(0, 14, 6, 8)
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ours, theirs = loss(xa, y), pml(xb, y)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-7)
    assert ours.item() == pytest.approx(
        naive_cosface(x, y, loss.proxies.detach(), margin, scale), rel=1e-9
    )
    ours.backward()
    theirs.backward()
    torch.testing.assert_close(xa.grad, xb.grad)
    torch.testing.assert_close(loss.proxies.grad, pml.W.grad.T)


def test_gradcheck():
    assert_gradcheck(make_loss("cosface", 4, 5, scale=4.0), *make_batch(0, 7, 4, 5))


def test_learns():
    assert_learns(make_loss("cosface", 5, 8, scale=16.0))


def test_edge_cases():
    assert_edge_cases(make_loss("cosface", 4, 6), 6)
