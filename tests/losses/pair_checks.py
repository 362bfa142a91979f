"""Shared checks for the pair-based losses and the direction regularizer (gradcheck, learning
sanity, zero-loss edge cases, permutation invariance).  Oracle comparisons live in the test
files."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dmlstudy.losses import DMLLoss


def make_batch(
    seed: int, per_class: int, num_classes: int, dim: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded float64 embeddings and shuffled labels with ``per_class`` samples of each class."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    labels = labels[torch.randperm(len(labels), generator=gen)]
    return torch.randn(len(labels), dim, generator=gen, dtype=torch.float64), labels


def recall_at_1(embeddings: torch.Tensor, labels: torch.Tensor) -> float:
    """Leave-one-out cosine Recall@1."""
    x = F.normalize(embeddings.detach(), dim=1)
    sims = x @ x.T
    sims.fill_diagonal_(float("-inf"))
    return (labels[sims.argmax(dim=1)] == labels).double().mean().item()


def assert_gradcheck(loss: DMLLoss, x: torch.Tensor, y: torch.Tensor) -> None:
    """float64 finite differences agree with autograd (inputs are generic, away from hinge
    kinks)."""
    x = x.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a: loss(a, y), (x,), eps=1e-6, atol=1e-5)


def assert_learns(
    loss: DMLLoss, *, seed: int = 0, steps: int = 80, lr: float = 0.05, per_class: int = 4
) -> None:
    """Optimizing free embeddings (plus the loss's own parameters) of a seeded toy problem lowers
    the loss and raises Recall@1."""
    x, y = make_batch(seed, per_class=per_class, num_classes=6, dim=8)
    x.requires_grad_(True)
    params = [x, *loss.parameters()]
    state: dict[int, list[torch.Tensor]] = {}
    first, r1_before = loss(x, y).item(), recall_at_1(x, y)
    for step in range(1, steps + 1):
        grads = torch.autograd.grad(loss(x, y), params, allow_unused=True)
        _adam_step(params, grads, state, step, lr)
    last, r1_after = loss(x, y).item(), recall_at_1(x, y)
    assert last < first - 1e-3, (first, last)
    assert r1_after > r1_before and r1_after >= 0.9, (r1_before, r1_after)


def _adam_step(
    params: list[torch.Tensor],
    grads: tuple[torch.Tensor | None, ...],
    state: dict[int, list[torch.Tensor]],
    step: int,
    lr: float,
) -> None:
    """One Adam update (betas 0.9/0.999), written out: ``torch.optim`` costs seconds to import."""
    with torch.no_grad():
        for p, g in zip(params, grads):
            if g is None:
                continue
            m, v = state.setdefault(id(p), [torch.zeros_like(p), torch.zeros_like(p)])
            m.mul_(0.9).add_(g, alpha=0.1)
            v.mul_(0.999).addcmul_(g, g, value=0.001)
            m_hat, v_hat = m / (1 - 0.9**step), v / (1 - 0.999**step)
            p.sub_(lr * m_hat / (v_hat.sqrt() + 1e-8))


def assert_zero(loss: DMLLoss, x: torch.Tensor, y: torch.Tensor) -> None:
    """The loss is a finite exact zero with an all-zero (not NaN) gradient."""
    x = x.clone().requires_grad_(True)
    value = loss(x, y)
    value.backward()
    assert torch.isfinite(value) and value.item() == 0.0, value
    assert x.grad is not None and torch.equal(x.grad, torch.zeros_like(x)), x.grad


def assert_finite_with_grad(loss: DMLLoss, x: torch.Tensor, y: torch.Tensor) -> None:
    """The loss and its gradient are finite."""
    x = x.clone().requires_grad_(True)
    value = loss(x, y)
    value.backward()
    assert torch.isfinite(value), value
    assert x.grad is not None and torch.isfinite(x.grad).all()


def assert_permutation_invariant(
    loss: DMLLoss, x: torch.Tensor, y: torch.Tensor, seed: int = 1
) -> None:
    """Permuting the batch leaves the loss unchanged (to rounding)."""
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(loss(x[perm], y[perm]), loss(x, y), rtol=1e-10, atol=1e-12)


def edge_batches(dim: int = 5) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Seeded edge-case batches: one class, all singletons, one singleton class among pairs."""
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(6, dim, generator=gen, dtype=torch.float64)
    return {
        "one_class": (x, torch.zeros(6, dtype=torch.long)),
        "singletons": (x, torch.arange(6)),
        "one_singleton_class": (x, torch.tensor([0, 0, 1, 1, 2, 3])),
    }
