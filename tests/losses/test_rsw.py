"""Tests of the RSW loss against a naive per-sample loop written from the formula."""

from __future__ import annotations

import math

import pytest
import torch

from dmlstudy.losses import build_loss, loss_hyperparameters
from dmlstudy.losses.rsw import RealignedSoftmaxWarpingLoss, warp_true_distance


def naive_rsw(x, y, proxies, *, T, alpha, k1, k2, m):
    """Per-sample loop straight from the paper / official code (values only)."""
    total = 0.0
    for i in range(x.shape[0]):
        logits = []
        for c in range(proxies.shape[0]):
            d = math.sqrt(
                sum((float(x[i, j]) - float(proxies[c, j])) ** 2 for j in range(x.shape[1]))
            )
            if c == int(y[i]):
                d = k1 * d + m * (1 - k1) * d if d < alpha else k2 * d + alpha * (1 - k2)
            logits.append(-T * d)
        mx = max(logits)
        lse = mx + math.log(sum(math.exp(v - mx) for v in logits))
        total += lse - logits[int(y[i])]
    return total / x.shape[0]


def make(seed: int, b=12, c=5, d=6, scale=3.0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(b, d, generator=g) * scale).to(dtype)
    y = torch.randint(0, c, (b,), generator=g)
    p = (torch.randn(c, d, generator=g) * scale).to(dtype)
    return x, y, p


@pytest.mark.parametrize(
    "alpha", [1.0, 6.0, 100.0]
)  # all in the inward, mixed, all outward regimes
def test_matches_naive_loop(alpha):
    x, y, p = make(0)
    loss = RealignedSoftmaxWarpingLoss(
        5, 6, temperature=0.7, alpha=alpha, k1=0.9, k2=1.2, margin=1.5
    ).double()
    loss.proxies.data.copy_(p)
    expected = naive_rsw(x, y, p, T=0.7, alpha=alpha, k1=0.9, k2=1.2, m=1.5)
    assert loss(x, y).item() == pytest.approx(expected, rel=1e-10)


def test_gradcheck_away_from_kink():
    x, y, p = make(1)
    loss = RealignedSoftmaxWarpingLoss(
        5, 6, temperature=0.5, alpha=7.0, k1=0.9, k2=1.2, margin=1.3
    ).double()
    loss.proxies.data.copy_(p)
    d_y = torch.cdist(x, p).gather(1, y[:, None])
    assert ((d_y - 7.0).abs() > 0.05).all()  # no sample sits on the kink d_y = alpha
    assert (d_y < 7.0).any() and (d_y > 7.0).any()

    # The detached margin term makes the analytic gradient differ on purpose from the numerical
    # derivative of the value (tested separately below); with margin=0 that term vanishes.
    loss.margin = 0.0
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda e, q: _with_proxies(loss, q)(e, y), (x, loss.proxies))


def _with_proxies(loss, q):
    def f(e, y):
        return torch.func.functional_call(loss, {"proxies": q}, (e, y))

    return f


def test_margin_term_is_detached():
    d = torch.tensor([2.0, 30.0], requires_grad=True)
    w = warp_true_distance(d, alpha=28.4, k1=0.93, k2=1.15, margin=1.3)
    w.sum().backward()
    assert torch.allclose(d.grad, torch.tensor([0.93, 1.15]))  # slope k1 below alpha, k2 above
    assert w[0].item() == pytest.approx(2.0 * (0.93 + 1.3 * 0.07))


def test_phase_switch_schedule_and_set_phase():
    loss = build_loss("rsw", num_classes=4, embedding_dim=3, phase2_epochs=3)
    phases = []
    for epoch in range(10):
        loss.schedule(epoch, 10)
        phases.append(loss.phase)
    assert phases == [1] * 7 + [2] * 3
    assert loss.current == {"temperature": 1.0, "alpha": 24.68, "k1": 0.95, "k2": 1.20}
    loss.set_phase(1)
    assert loss.current == {"temperature": 4.525, "alpha": 28.40, "k1": 0.93, "k2": 1.15}
    x, y, _ = make(2, c=4, d=3, dtype=torch.float32)
    l1 = loss(x, y)
    loss.set_phase(2)
    assert not torch.isclose(loss(x, y), l1)
    with pytest.raises(ValueError, match="phase must be 1 or 2"):
        loss.set_phase(3)
    with pytest.raises(ValueError, match="phase2_epochs"):
        loss.schedule(0, 3)
    no_phase2 = build_loss("rsw", num_classes=4, embedding_dim=3, phase2_epochs=0)
    no_phase2.schedule(4, 5)
    assert no_phase2.phase == 1


def test_phase_two_follows_the_plateau_lr_drop():
    """Under the plateau rule the epoch cap says nothing about "the last epochs": phase 2 starts
    at the first lr drop (where the official phase 2 lowers the learning rates)."""
    loss = build_loss("rsw", num_classes=4, embedding_dim=3, phase2_epochs=30)
    loss.schedule(25, 40, lr_drops=0)  # the fixed-budget rule would say phase 2 here
    assert loss.phase == 1
    loss.schedule(5, 40, lr_drops=1)
    assert loss.phase == 2
    off = build_loss("rsw", num_classes=4, embedding_dim=3, phase2_epochs=0)
    off.schedule(5, 40, lr_drops=1)
    assert off.phase == 1


def test_registry_defaults_and_param_groups():
    hp = loss_hyperparameters("rsw")
    assert hp["temperature"] == 4.525 and hp["alpha"] == 28.40 and hp["margin"] == 1.30
    assert hp["proxy_lr_multiplier"] == 100.0 and hp["phase2_epochs"] == 30
    loss = build_loss("rsw", num_classes=7, embedding_dim=5)
    assert loss.metric == "euclidean" and loss.normalize_embeddings is False
    groups = loss.param_groups(0.01)
    assert groups[0]["lr"] == pytest.approx(1.0) and groups[0]["params"][0] is loss.proxies
    assert groups[0]["eps"] == 1.0  # official Adam eps for the proxies
    # kaiming_normal_(fan_out) on (C, d): std sqrt(2 / C)
    big = build_loss("rsw", num_classes=50, embedding_dim=2000)
    assert big.proxies.std().item() == pytest.approx(math.sqrt(2 / 50), rel=0.05)
    with pytest.raises(ValueError, match="needs num_classes"):
        build_loss("rsw", embedding_dim=5)


def test_bad_inputs_raise():
    loss = build_loss("rsw", num_classes=3, embedding_dim=4)
    with pytest.raises(ValueError, match=r"rsw: labels must be contiguous class ids in 0\.\.2"):
        loss(torch.randn(2, 4), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match=r"shape \(B, 4\)"):
        loss(torch.randn(2, 5), torch.tensor([0, 1]))


def test_permutation_invariance_and_learning():
    x, y, _ = make(3, b=40, c=4, d=8, scale=1.0, dtype=torch.float32)
    torch.manual_seed(0)
    loss = RealignedSoftmaxWarpingLoss(4, 8, alpha=3.0, temperature=2.0)
    perm = torch.randperm(40, generator=torch.Generator().manual_seed(0))
    assert torch.isclose(loss(x, y), loss(x[perm], y[perm]))
    emb = x.clone().requires_grad_(True)
    opt = torch.optim.Adam([{"params": [emb], "lr": 0.05}, *loss.param_groups(0.05)])
    first = loss(emb, y).item()
    for _ in range(60):
        opt.zero_grad()
        value = loss(emb, y)
        value.backward()
        opt.step()
    assert value.item() < 0.2 * first
    nearest = torch.cdist(emb.detach(), loss.proxies.detach()).argmin(1)
    assert (nearest == y).float().mean() == 1.0
