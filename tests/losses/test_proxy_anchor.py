"""Proxy-Anchor (dmlstudy.losses.proxy.ProxyAnchorLoss) against pytorch-metric-learning and the
formula."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning.losses import ProxyAnchorLoss as PMLProxyAnchor

from dmlstudy.losses import loss_hyperparameters
from tests.losses.proxy_checks import (
    assert_edge_cases,
    assert_gradcheck,
    assert_learns,
    assert_param_groups,
    make_batch,
    make_loss,
)


def naive_proxy_anchor(x, y, proxies, alpha, margin):
    """Kim et al. 2020 eq. 4, loop by loop."""
    cos = F.normalize(x, dim=1) @ F.normalize(proxies, dim=1).T
    pos_total, neg_total, with_pos = 0.0, 0.0, 0
    for c in range(proxies.shape[0]):
        pos = [math.exp(-alpha * (cos[i, c].item() - margin)) for i in range(len(y)) if y[i] == c]
        neg = [math.exp(alpha * (cos[i, c].item() + margin)) for i in range(len(y)) if y[i] != c]
        if pos:
            with_pos += 1
            pos_total += math.log(1 + sum(pos))
        neg_total += math.log(1 + sum(neg))
    return pos_total / with_pos + neg_total / proxies.shape[0]


def test_defaults_are_published():
    hp = loss_hyperparameters("proxy_anchor")
    assert hp == {"alpha": 32.0, "margin": 0.1, "proxy_lr_multiplier": 100.0}
    loss = make_loss("proxy_anchor", 7, 16)
    assert_param_groups(loss, 100.0)
    # kaiming_normal_(fan_out) on C×d: std = sqrt(2 / C)
    big = make_loss("proxy_anchor", 50, 2000)
    assert big.proxies.std().item() == pytest.approx(math.sqrt(2 / 50), rel=0.02)


@pytest.mark.parametrize("alpha,margin", [(32.0, 0.1), (4.0, 0.3)])
def test_matches_pml_and_formula(alpha, margin):
    loss = make_loss("proxy_anchor", 9, 12, alpha=alpha, margin=margin)
    pml = PMLProxyAnchor(9, 12, alpha=alpha, margin=margin).double()
    pml.proxies.data.copy_(loss.proxies.data)
    for seed, batch in [(0, 20), (1, 5)]:  # batch 5 leaves some proxies without positives
        x, y = make_batch(seed, batch, 9, 12)
        ours = loss(x, y)
        torch.testing.assert_close(ours, pml(x, y), rtol=1e-5, atol=1e-7)
        assert ours.item() == pytest.approx(
            naive_proxy_anchor(x, y, loss.proxies.detach(), alpha, margin), rel=1e-9
        )


def test_gradients_match_pml():
    loss = make_loss("proxy_anchor", 6, 8)
    pml = PMLProxyAnchor(6, 8).double()
    pml.proxies.data.copy_(loss.proxies.data)
    x, y = make_batch(2, 10, 6, 8)
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    loss(xa, y).backward()
    pml(xb, y).backward()
    torch.testing.assert_close(xa.grad, xb.grad)
    torch.testing.assert_close(loss.proxies.grad, pml.proxies.grad)


def test_gradcheck():
    loss = make_loss("proxy_anchor", 4, 5, alpha=8.0)
    assert_gradcheck(loss, *make_batch(0, 7, 4, 5))


def test_large_alpha_is_stable():
    loss = make_loss("proxy_anchor", 4, 5, alpha=5000.0)
    x, y = make_batch(0, 8, 4, 5)
    assert torch.isfinite(loss(x, y))


def test_learns():
    assert_learns(make_loss("proxy_anchor", 5, 8))


def test_edge_cases():
    assert_edge_cases(make_loss("proxy_anchor", 4, 6), 6)
