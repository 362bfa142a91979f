"""ProxyGML (dmlstudy.losses.proxy_gml.ProxyGMLLoss) against a naive loop of the official
formula."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dmlstudy.losses import loss_hyperparameters
from dmlstudy.losses.proxy_gml import ProxyGMLLoss, proxy_regularizer
from tests.losses.proxy_checks import (
    assert_edge_cases,
    assert_gradcheck,
    assert_learns,
    assert_param_groups,
    make_batch,
    make_loss,
)


def naive_proxy_gml(x, y, proxies, num_classes, per_class, ratio, reg_weight):
    """Official loss/ProxyGML.py forward, one sample and one proxy at a time (1e-8/1e-20 guards
    kept)."""
    centers = F.normalize(proxies, dim=1).tolist()
    xs = F.normalize(x, dim=1).tolist()
    owner = [j // per_class for j in range(len(centers))]
    k = math.ceil(ratio * num_classes * per_class)
    dot = lambda a, b: sum(u * v for u, v in zip(a, b))  # noqa: E731
    total = 0.0
    for i, label in enumerate(y.tolist()):
        sims = [dot(xs[i], c) for c in centers]
        ranked = sorted(range(len(sims)), key=lambda j: -(sims[j] + 1000 * (owner[j] == label)))
        kept = set(ranked[:k])
        logits = [sum(sims[j] for j in kept if owner[j] == c) for c in range(num_classes)]
        denom = 1e-8 + sum(math.exp(v) for v in logits if v != 0.0)
        total += -math.log(math.exp(logits[label]) / denom + 1e-20)
    loss = total / len(y)
    if reg_weight > 0:
        reg = 0.0
        for a in range(len(centers)):
            logits = [
                sum(dot(centers[a], centers[b]) for b in range(len(centers)) if owner[b] == c)
                for c in range(num_classes)
            ]
            top = max(logits)
            reg += -(logits[owner[a]] - top - math.log(sum(math.exp(v - top) for v in logits)))
        loss += reg_weight * reg / len(centers)
    return loss


def test_defaults_init_and_param_groups():
    assert loss_hyperparameters("proxy_gml") == {
        "proxies_per_class": 12,
        "top_ratio": 0.05,
        "reg_weight": 0.3,
        "scale": 1.0,
        "proxy_lr_multiplier": 300.0,
    }
    assert ProxyGMLLoss.optimizer_hints == {"adam_eps": 0.01, "weight_decay": 1e-4}
    loss = make_loss("proxy_gml", 100, 512)
    assert loss.proxies.shape == (1200, 512) and loss.top_k == 60
    # kaiming_uniform_(a=√5) on the official 512×1200 layout: U(−1/√1200, 1/√1200)
    assert loss.proxies.abs().max().item() <= 1 / math.sqrt(1200)
    assert_param_groups(loss, 300.0, eps=0.01)


@pytest.mark.parametrize(
    "per_class,ratio,reg_weight",
    [
        (3, 0.3, 0.3),
        (3, 0.05, 0.0),
        (1, 0.5, 0.0),
        (4, 0.5, 1.0),
    ],  # k=5 (>N), k=1 (<N), SOP-like, many kept
)
def test_matches_naive_official_formula(per_class, ratio, reg_weight):
    num_classes, dim = 5, 6
    loss = make_loss(
        "proxy_gml",
        num_classes,
        dim,
        proxies_per_class=per_class,
        top_ratio=ratio,
        reg_weight=reg_weight,
    )
    for seed in (0, 1):
        x, y = make_batch(seed, 9, num_classes, dim)
        expected = naive_proxy_gml(
            x, y, loss.proxies.detach(), num_classes, per_class, ratio, reg_weight
        )
        assert loss(x, y).item() == pytest.approx(expected, rel=1e-6, abs=1e-7)


def test_gradcheck():
    loss = make_loss("proxy_gml", 4, 5, proxies_per_class=3, top_ratio=0.4)
    assert_gradcheck(loss, *make_batch(0, 7, 4, 5))


def test_learns():
    assert_learns(make_loss("proxy_gml", 5, 8, proxies_per_class=3, top_ratio=0.4))


def test_edge_cases():
    assert_edge_cases(make_loss("proxy_gml", 4, 6, proxies_per_class=2, top_ratio=0.5), 6)


@pytest.mark.parametrize("block_rows", [1, 4, 7, 512])  # one row, blocks that split classes, one
def test_blockwise_regularizer_equals_the_one_line_form_with_its_gradient(block_rows):
    num_classes, per_class, dim = 5, 3, 6
    gen = torch.Generator().manual_seed(0)
    raw = torch.randn(num_classes * per_class, dim, generator=gen, dtype=torch.float64)
    proxies = F.normalize(raw, dim=1).requires_grad_()
    owner = torch.arange(num_classes).repeat_interleave(per_class)
    sums = proxies.view(num_classes, per_class, dim).sum(1)
    expected = F.cross_entropy(proxies @ sums.T, owner)
    (want,) = torch.autograd.grad(expected, proxies)
    got = proxy_regularizer(proxies, num_classes, per_class, block_rows=block_rows)
    (grad,) = torch.autograd.grad(got, proxies)
    assert got.dtype == torch.float64
    assert got.item() == pytest.approx(expected.item(), rel=1e-12)
    torch.testing.assert_close(grad, want, rtol=1e-10, atol=1e-12)
    assert torch.autograd.gradcheck(
        lambda p: proxy_regularizer(p, num_classes, per_class, block_rows=block_rows),
        (proxies.detach().clone().requires_grad_(),),
    )


def test_blockwise_regularizer_under_bfloat16_autocast_equals_the_one_line_form_there():
    """bf16 matmuls as autocast makes the one-line form's; softmax and sums in float32."""
    raw = torch.randn(60, 8, generator=torch.Generator().manual_seed(1))
    proxies = F.normalize(raw, dim=1).requires_grad_()
    owner = torch.arange(12).repeat_interleave(5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        sums = proxies.view(12, 5, 8).sum(1)
        expected = F.cross_entropy(proxies @ sums.T, owner)
        got = proxy_regularizer(proxies, 12, 5, block_rows=7)
    (want,) = torch.autograd.grad(expected, proxies)
    (grad,) = torch.autograd.grad(got, proxies)
    assert got.dtype == grad.dtype == torch.float32
    assert got.item() == pytest.approx(expected.item(), rel=1e-3)
    torch.testing.assert_close(grad, want, rtol=0.02, atol=2e-4)
