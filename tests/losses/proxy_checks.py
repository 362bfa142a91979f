"""Shared checks for the proxy-based losses (gradcheck, learning sanity, edge cases).

Each ``test_<loss>.py`` calls these with its own loss; the oracle comparisons live in those files.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.func import functional_call

from dmlstudy.losses import DMLLoss, build_loss

Factory = Callable[..., DMLLoss]


def make_loss(name: str, num_classes: int, embedding_dim: int, seed: int = 0, **params) -> DMLLoss:
    """Build ``name`` in float64 with proxies drawn under a fixed seed (the init keeps its law)."""
    state = torch.random.get_rng_state()
    try:  # the constructors use the global generator; isolate it so tests stay order-independent
        torch.manual_seed(seed)
        loss = build_loss(name, num_classes=num_classes, embedding_dim=embedding_dim, **params)
    finally:
        torch.random.set_rng_state(state)
    return loss.double()


def make_batch(
    seed: int, batch: int, num_classes: int, dim: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded float64 embeddings and labels covering as many classes as the batch allows."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(batch) % num_classes
    labels = labels[torch.randperm(batch, generator=gen)]
    return torch.randn(batch, dim, generator=gen, dtype=torch.float64), labels


def recall_at_1(embeddings: torch.Tensor, labels: torch.Tensor) -> float:
    """Leave-one-out cosine Recall@1."""
    x = F.normalize(embeddings.detach(), dim=1)
    sims = x @ x.T
    sims.fill_diagonal_(float("-inf"))
    return (labels[sims.argmax(dim=1)] == labels).double().mean().item()


def loss_of(loss: DMLLoss, x: torch.Tensor, y: torch.Tensor, proxies: torch.Tensor) -> torch.Tensor:
    """The loss as a pure function of (embeddings, proxies)."""
    return functional_call(loss, {"proxies": proxies}, (x, y))


def assert_gradcheck(loss: DMLLoss, x: torch.Tensor, y: torch.Tensor) -> None:
    """float64 finite differences agree with autograd through embeddings AND proxies."""
    x = x.clone().requires_grad_(True)
    proxies = loss.proxies.detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda a, p: loss_of(loss, a, y, p), (x, proxies), eps=1e-6, atol=1e-5
    )


def assert_learns(loss: DMLLoss, *, seed: int = 0, steps: int = 100, lr: float = 0.05) -> None:
    """Optimizing free embeddings + proxies of a seeded toy problem lowers the loss and raises
    R@1."""
    num_classes, dim = loss.num_classes, loss.embedding_dim
    x, y = make_batch(seed, 6 * num_classes, num_classes, dim)
    x.requires_grad_(True)
    opt = torch.optim.Adam([x, *loss.parameters()], lr=lr)
    first = loss(x, y).item()
    r1_before = recall_at_1(x, y)
    for _ in range(steps):
        opt.zero_grad()
        value = loss(x, y)
        value.backward()
        opt.step()
    last = loss(x, y).item()
    r1_after = recall_at_1(x, y)
    assert last < first - 1e-3, (first, last)
    assert r1_after > r1_before and r1_after >= 0.8, (r1_before, r1_after)


def assert_edge_cases(loss: DMLLoss, dim: int) -> None:
    """One-class batch and singleton classes stay finite; an empty batch is a zero with zero grads;
    the loss is invariant to permuting the batch; bfloat16 input is computed in float32; bad labels
    raise."""
    x, y = make_batch(3, 8, loss.num_classes, dim)
    for labels in (torch.zeros(8, dtype=torch.long), torch.arange(8) % loss.num_classes):
        emb = x.clone().requires_grad_(True)
        loss.zero_grad()
        value = loss(emb, labels)
        value.backward()
        assert torch.isfinite(value), labels
        assert torch.isfinite(emb.grad).all() and torch.isfinite(loss.proxies.grad).all()
    emb = torch.zeros(0, dim, dtype=torch.float64, requires_grad=True)
    loss.zero_grad()
    value = loss(emb, torch.zeros(0, dtype=torch.long))
    value.backward()
    assert value.item() == 0.0 and (loss.proxies.grad == 0).all()
    perm = torch.randperm(8, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(loss(x[perm], y[perm]), loss(x, y), rtol=1e-12, atol=1e-12)
    single = copy.deepcopy(
        loss
    ).float()  # bfloat16 embeddings (autocast output) are computed in float32
    low = single(x.to(torch.bfloat16), y)
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, single(x.to(torch.bfloat16).float(), y))
    for bad in (torch.full((8,), loss.num_classes), torch.full((8,), -1)):
        try:
            loss(x, bad)
        except ValueError as err:
            assert "num_classes" in str(err)
        else:  # pragma: no cover - the failing branch
            raise AssertionError("labels outside 0..C-1 must raise")


def assert_param_groups(loss: DMLLoss, multiplier: float, **options: float) -> None:
    """param_groups carries exactly the proxies at base_lr × the named multiplier (+ group options),
    and a real optimizer accepts the group."""
    (group,) = loss.param_groups(0.5)
    assert group["params"] == [loss.proxies]
    assert group["lr"] == 0.5 * multiplier
    assert {k: v for k, v in group.items() if k not in ("params", "lr", "name")} == options
    for opt in (torch.optim.Adam, torch.optim.SGD):
        opt([group], lr=1.0)
    assert {id(p) for p in loss.parameters()} == {id(loss.proxies)}
