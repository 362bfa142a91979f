"""ArcFace (dmlstudy.losses.margin_softmax.ArcFaceLoss) against pytorch-metric-learning and the
formula."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning.losses import ArcFaceLoss as PMLArcFace

from dmlstudy.losses import loss_hyperparameters
from tests.losses.proxy_checks import (
    assert_edge_cases,
    assert_gradcheck,
    assert_learns,
    assert_param_groups,
    make_batch,
    make_loss,
)


def naive_arcface(x, y, weights, margin_degrees, scale):
    """Deng et al. 2019 eq. 3 with the official fallback cos θ − m·sin m beyond θ = π − m."""
    m = math.radians(margin_degrees)
    cos = (F.normalize(x, dim=1) @ F.normalize(weights, dim=1).T).tolist()
    total = 0.0
    for i, label in enumerate(y.tolist()):
        theta = math.acos(max(-1.0, min(1.0, cos[i][label])))
        target = math.cos(theta + m) if theta <= math.pi - m else cos[i][label] - m * math.sin(m)
        logits = [scale * (target if c == label else v) for c, v in enumerate(cos[i])]
        top = max(logits)
        total += -(logits[label] - top - math.log(sum(math.exp(v - top) for v in logits)))
    return total / len(y)


def test_defaults_and_param_groups():
    assert loss_hyperparameters("arcface") == {
        "margin_degrees": 28.6,
        "scale": 64.0,
        "proxy_lr_multiplier": 1.0,
    }
    loss = make_loss("arcface", 30, 500)
    assert loss.proxies.std().item() == pytest.approx(0.01, rel=0.02)  # insightface N(0, 0.01²)
    assert_param_groups(loss, 1.0)


@pytest.mark.parametrize(
    "margin_degrees,scale", [(28.6, 64.0), (120.0, 10.0)]
)  # 120°: fallback branch taken
def test_matches_pml_and_formula(margin_degrees, scale):
    loss = make_loss("arcface", 6, 8, margin_degrees=margin_degrees, scale=scale)
    pml = PMLArcFace(6, 8, margin=margin_degrees, scale=scale).double()
    pml.W.data.copy_(loss.proxies.data.T)
    x, y = make_batch(0, 14, 6, 8)
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ours, theirs = loss(xa, y), pml(xb, y)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-7)
    assert ours.item() == pytest.approx(
        naive_arcface(x, y, loss.proxies.detach(), margin_degrees, scale), rel=1e-9
    )
    ours.backward()
    theirs.backward()
    torch.testing.assert_close(xa.grad, xb.grad)
    torch.testing.assert_close(loss.proxies.grad, pml.W.grad.T)


@pytest.mark.parametrize("margin_degrees", [28.6, 120.0])
def test_gradcheck(margin_degrees):
    loss = make_loss("arcface", 4, 5, margin_degrees=margin_degrees, scale=4.0)
    assert_gradcheck(loss, *make_batch(0, 7, 4, 5))


def test_learns():
    assert_learns(make_loss("arcface", 5, 8, scale=16.0))


def test_edge_cases():
    assert_edge_cases(make_loss("arcface", 4, 6), 6)
