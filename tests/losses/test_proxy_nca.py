"""ProxyNCA (dmlstudy.losses.proxy.ProxyNCALoss) against pytorch-metric-learning and the paper
formula.

PML's ``ProxyNCALoss`` puts the true class in the softmax denominator; the paper (eq. 4) does not.
With ``p_i`` PML's per-sample softmax probability of the true class (``l_i = −log p_i``), the paper
loss is ``−log(p_i / (1 − p_i)) = l_i + log(1 − e^{−l_i})`` — that transformation is the oracle.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning.losses import ProxyNCALoss as PMLProxyNCA
from pytorch_metric_learning.reducers import DoNothingReducer

from dmlstudy.losses import build_loss, loss_hyperparameters
from dmlstudy.losses.proxy import normalized_sq_distances
from tests.losses.proxy_checks import (
    assert_edge_cases,
    assert_gradcheck,
    assert_learns,
    assert_param_groups,
    make_batch,
    make_loss,
)


def naive_proxy_nca(x, y, proxies, scale):
    """Movshovitz-Attias et al. 2017 eq. 4, loop by loop."""
    xs, ps = F.normalize(x, dim=1), F.normalize(proxies, dim=1)
    total = 0.0
    for i in range(len(y)):
        dists = [((xs[i] - ps[c]) ** 2).sum().item() for c in range(len(ps))]
        neg = sum(math.exp(-scale * dists[c]) for c in range(len(ps)) if c != y[i])
        total += -math.log(math.exp(-scale * dists[y[i]]) / neg)
    return total / len(y)


def pml_per_sample(x, y, proxies, scale):
    pml = PMLProxyNCA(
        proxies.shape[0], proxies.shape[1], softmax_scale=scale, reducer=DoNothingReducer()
    ).double()
    pml.proxies.data.copy_(proxies)
    out = pml(x, y)["loss"]
    assert out["indices"].tolist() == list(
        range(len(y))
    )  # PML drops underflowed samples; none here
    return out["losses"]


def test_defaults_and_param_groups():
    assert loss_hyperparameters("proxy_nca") == {
        "softmax_scale": 1.0,
        "include_positive": False,
        "proxy_lr_multiplier": 1.0,
    }
    assert_param_groups(make_loss("proxy_nca", 5, 4), 1.0)
    big = make_loss("proxy_nca", 40, 1000)  # randn / 8 (dichotomies/proxy-nca), not PML's N(0, 1)
    assert big.proxies.std().item() == pytest.approx(1 / 8, rel=0.02)
    direction = build_loss("direction", base="proxy_nca", num_classes=40, embedding_dim=1000)
    assert direction.proxies.std().item() == pytest.approx(1 / 8, rel=0.02)
    with pytest.raises(ValueError, match="num_classes"):
        build_loss("proxy_nca", num_classes=1, embedding_dim=4)


def test_distance_function():
    x, _ = make_batch(0, 6, 3, 5)
    p = torch.randn(4, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    expected = torch.cdist(F.normalize(x, dim=1), F.normalize(p, dim=1)) ** 2
    torch.testing.assert_close(normalized_sq_distances(x, p), expected)


@pytest.mark.parametrize("scale", [1.0, 8.0])
def test_paper_formula_matches_transformed_pml(scale):
    loss = make_loss("proxy_nca", 7, 10, softmax_scale=scale)
    x, y = make_batch(0, 15, 7, 10)
    per_sample = pml_per_sample(x, y, loss.proxies.data, scale)
    expected = (per_sample + torch.log1p(-torch.exp(-per_sample))).mean()
    torch.testing.assert_close(loss(x, y), expected, rtol=1e-5, atol=1e-7)
    assert loss(x, y).item() == pytest.approx(
        naive_proxy_nca(x, y, loss.proxies.detach(), scale), rel=1e-9
    )


def test_include_positive_is_pml():
    loss = make_loss("proxy_nca", 7, 10, softmax_scale=3.0, include_positive=True)
    pml = PMLProxyNCA(7, 10, softmax_scale=3.0).double()
    pml.proxies.data.copy_(loss.proxies.data)
    x, y = make_batch(1, 15, 7, 10)
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ours, theirs = loss(xa, y), pml(xb, y)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-7)
    ours.backward()
    theirs.backward()
    torch.testing.assert_close(xa.grad, xb.grad)
    torch.testing.assert_close(loss.proxies.grad, pml.proxies.grad)


@pytest.mark.parametrize("include_positive", [False, True])
def test_gradcheck(include_positive):
    loss = make_loss("proxy_nca", 4, 5, softmax_scale=3.0, include_positive=include_positive)
    assert_gradcheck(loss, *make_batch(0, 7, 4, 5))


def test_learns():
    assert_learns(make_loss("proxy_nca", 5, 8, softmax_scale=8.0))


def test_edge_cases():
    assert_edge_cases(make_loss("proxy_nca", 4, 6), 6)
