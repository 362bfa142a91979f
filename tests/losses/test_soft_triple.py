"""SoftTriple (dmlstudy.losses.soft_triple.SoftTripleLoss) against pytorch-metric-learning and the
official regularizer.  PML's ``SoftTripleLoss`` has no centre regularizer, so it is the oracle for
``tau=0``; the regularizer is checked against a loop of the official code's formula."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning.losses import SoftTripleLoss as PMLSoftTriple

from dmlstudy.losses import loss_hyperparameters
from dmlstudy.losses.soft_triple import SoftTripleLoss
from tests.losses.proxy_checks import (
    assert_edge_cases,
    assert_gradcheck,
    assert_learns,
    assert_param_groups,
    make_batch,
    make_loss,
)


def naive_regularizer(proxies, num_classes, per_class):
    """Official: Σ_c Σ_{k<k'} sqrt(2 + 1e-5 − 2·w_k·w_k') / (C·K·(K−1))."""
    w = F.normalize(proxies, dim=1)
    total = 0.0
    for c in range(num_classes):
        for a in range(per_class):
            for b in range(a + 1, per_class):
                sim = (w[c * per_class + a] * w[c * per_class + b]).sum().item()
                total += math.sqrt(2.0 + 1e-5 - 2.0 * sim)
    return total / (num_classes * per_class * (per_class - 1))


def test_defaults_init_and_param_groups():
    assert loss_hyperparameters("soft_triple") == {
        "centers_per_class": 10,
        "la": 20.0,
        "gamma": 0.1,
        "tau": 0.2,
        "margin": 0.01,
        "proxy_lr_multiplier": 100.0,
    }
    assert SoftTripleLoss.optimizer_hints == {"adam_eps": 0.01, "weight_decay": 1e-4}
    loss = make_loss("soft_triple", 20, 64)
    assert loss.proxies.shape == (200, 64)
    assert loss.proxies.abs().max().item() <= 1 / math.sqrt(
        200
    )  # kaiming_uniform(a=√5), fan_in C·K
    assert_param_groups(loss, 100.0, eps=0.01)


@pytest.mark.parametrize("per_class,gamma,margin", [(10, 0.1, 0.01), (3, 0.5, 0.2), (1, 0.1, 0.01)])
def test_matches_pml_and_official_regularizer(per_class, gamma, margin):
    kw = dict(centers_per_class=per_class, gamma=gamma, margin=margin)
    x, y = make_batch(0, 14, 6, 8)
    no_reg = make_loss("soft_triple", 6, 8, tau=0.0, **kw)
    pml = PMLSoftTriple(
        6, 8, centers_per_class=per_class, la=20, gamma=gamma, margin=margin
    ).double()
    pml.fc.data.copy_(no_reg.proxies.data.T)
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ours, theirs = no_reg(xa, y), pml(xb, y)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-7)
    ours.backward()
    theirs.backward()
    torch.testing.assert_close(xa.grad, xb.grad)
    torch.testing.assert_close(no_reg.proxies.grad, pml.fc.grad.T)
    with_reg = make_loss("soft_triple", 6, 8, tau=0.2, **kw)  # same seed → same centres
    reg = naive_regularizer(with_reg.proxies.detach(), 6, per_class) if per_class > 1 else 0.0
    assert with_reg(x, y).item() == pytest.approx(theirs.item() + 0.2 * reg, rel=1e-9)


def test_gradcheck():
    loss = make_loss("soft_triple", 4, 5, centers_per_class=3)
    assert_gradcheck(loss, *make_batch(0, 7, 4, 5))


def test_learns():
    assert_learns(make_loss("soft_triple", 5, 8, centers_per_class=3), steps=300)


def test_edge_cases():
    assert_edge_cases(make_loss("soft_triple", 4, 6, centers_per_class=3), 6)
