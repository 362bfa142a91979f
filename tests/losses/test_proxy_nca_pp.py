"""ProxyNCA++ (dmlstudy.losses.proxy.ProxyNCAPlusPlusLoss) against the formula and the official
scaling.

Oracles: a naive loop of Teh et al. 2020 eq. 9, the official code's form (x̂ and p̂ scaled by
√(1/T) before the squared distance), and PML's ``ProxyNCALoss`` with ``softmax_scale = 1/T``
(its softmax includes the true class, as ProxyNCA++ does).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning.losses import ProxyNCALoss as PMLProxyNCA

from dmlstudy.losses import loss_hyperparameters
from dmlstudy.losses.proxy import ProxyNCAPlusPlusLoss
from tests.losses.proxy_checks import (
    assert_edge_cases,
    assert_gradcheck,
    assert_learns,
    assert_param_groups,
    make_batch,
    make_loss,
)


def naive_proxy_nca_pp(x, y, proxies, temperature):
    """−log softmax over all proxies of −‖x̂ − p̂_c‖² / T, loop by loop."""
    xs, ps = F.normalize(x, dim=1), F.normalize(proxies, dim=1)
    total = 0.0
    for i in range(len(y)):
        logits = [-((xs[i] - ps[c]) ** 2).sum().item() / temperature for c in range(len(ps))]
        top = max(logits)
        total += -(logits[y[i]] - top - math.log(sum(math.exp(v - top) for v in logits)))
    return total / len(y)


def official_form(x, y, proxies, scale):
    """euwern/proxynca_pp loss.ProxyNCA_prob with smoothing 0, re-typed (cdist for
    pairwise_distance)."""
    p, xx = scale * F.normalize(proxies, dim=-1), scale * F.normalize(x, dim=-1)
    d = torch.cdist(xx, p) ** 2
    t = F.one_hot(y, len(p)).to(x.dtype)
    return torch.sum(-t * F.log_softmax(-d, -1), -1).mean()


def test_defaults_init_and_hints():
    hp = loss_hyperparameters("proxy_nca_pp")
    assert hp == {"temperature": pytest.approx(1 / 9), "proxy_lr_multiplier": 1e5}
    assert ProxyNCAPlusPlusLoss.optimizer_hints == {"adam_eps": 1.0, "weight_decay": 0.0}
    assert_param_groups(make_loss("proxy_nca_pp", 5, 4), 1e5, eps=1.0, weight_decay=0.0)
    big = make_loss("proxy_nca_pp", 40, 1000)  # randn / 8
    assert big.proxies.std().item() == pytest.approx(1 / 8, rel=0.02)


@pytest.mark.parametrize("temperature", [1 / 9, 0.5])
def test_matches_formula_official_and_pml(temperature):
    loss = make_loss("proxy_nca_pp", 7, 10, temperature=temperature)
    x, y = make_batch(0, 15, 7, 10)
    ours = loss(x, y)
    proxies = loss.proxies.detach()
    assert ours.item() == pytest.approx(naive_proxy_nca_pp(x, y, proxies, temperature), rel=1e-9)
    torch.testing.assert_close(ours, official_form(x, y, proxies, math.sqrt(1 / temperature)))
    pml = PMLProxyNCA(7, 10, softmax_scale=1 / temperature).double()
    pml.proxies.data.copy_(proxies)
    torch.testing.assert_close(ours, pml(x, y), rtol=1e-5, atol=1e-7)


def test_gradcheck():
    assert_gradcheck(make_loss("proxy_nca_pp", 4, 5), *make_batch(0, 7, 4, 5))


def test_learns():
    assert_learns(make_loss("proxy_nca_pp", 5, 8))


def test_single_class_is_zero_with_zero_grad():
    loss = make_loss("proxy_nca_pp", 1, 4)
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    value = loss(x, torch.zeros(3, dtype=torch.long))
    value.backward()
    assert value.item() == 0.0 and (x.grad == 0).all()


def test_edge_cases():
    assert_edge_cases(make_loss("proxy_nca_pp", 4, 6), 6)
