"""N-pair loss: PML oracle at 2 per class, naive-loop oracle of the every-sample pairing at 3-5
per class and uneven counts, gradcheck, learning sanity, edge cases."""

from __future__ import annotations

import math

import pytest
import torch
from pytorch_metric_learning import distances as pml_distances
from pytorch_metric_learning import losses as pml
from pytorch_metric_learning.regularizers import LpRegularizer

from dmlstudy.losses import build_loss, loss_hyperparameters
from dmlstudy.losses.pair import NPairLoss
from tests.losses import pair_checks as checks


def _pml_npair(weight: float) -> pml.NPairsLoss:
    distance = pml_distances.DotProductSimilarity(normalize_embeddings=False)
    if weight == 0:
        return pml.NPairsLoss(distance=distance)
    return pml.NPairsLoss(
        distance=distance, embedding_regularizer=LpRegularizer(power=2), embedding_reg_weight=weight
    )


def naive_npair(x: torch.Tensor, y: torch.Tensor, weight: float) -> float:
    """The docstring's rule written as loops: per class, pairs (s0,s1), (s2,s3), … (+ (s_{n-1},
    s0) for odd n ≥ 3); each anchor's softmax over its positive and the other classes' positives;
    mean over all pairs."""
    rows, labels = x.tolist(), y.tolist()
    members: dict[int, list[int]] = {}
    for i, c in enumerate(labels):
        members.setdefault(c, []).append(i)
    pairs = []
    for idx in members.values():
        n = len(idx)
        if n >= 2:
            pairs += [(idx[k], idx[(k + 1) % n]) for k in range(0, n, 2)]

    def dot(i: int, j: int) -> float:
        return sum(u * v for u, v in zip(rows[i], rows[j]))

    terms = []
    for a, p in pairs:
        logits = [dot(a, q) for _, q in pairs if q == p or labels[q] != labels[a]]
        top = max(logits)
        terms.append(top + math.log(sum(math.exp(z - top) for z in logits)) - dot(a, p))
    reg = weight * sum(dot(i, i) for i in range(len(rows))) / len(rows)
    return (sum(terms) / len(terms) if terms else 0.0) + reg


def test_defaults() -> None:
    assert loss_hyperparameters("npair") == {"l2_reg_weight": 0.001}
    assert NPairLoss.normalize_embeddings is False


@pytest.mark.parametrize(("weight", "seed"), [(0.001, 0), (0.0, 1), (0.05, 2)])
def test_matches_pml_at_two_per_class(weight: float, seed: int) -> None:
    """2 per class (Sohn's batches) — also with singleton classes, which both leave out."""
    x, y = checks.make_batch(seed, per_class=2, num_classes=5, dim=6)
    ours = build_loss("npair", l2_reg_weight=weight)(x, y)
    torch.testing.assert_close(ours, _pml_npair(weight)(x, y), rtol=1e-5, atol=1e-8)
    x2 = torch.cat([x, x[:3] * 0.5])
    y2 = torch.cat([y, torch.tensor([7, 8, 9])])
    torch.testing.assert_close(
        build_loss("npair", l2_reg_weight=weight)(x2, y2), _pml_npair(weight)(x2, y2)
    )


@pytest.mark.parametrize(("per_class", "seed"), [(4, 0), (3, 1), (5, 2), (4, 3)])
def test_matches_naive_loop(per_class: int, seed: int) -> None:
    x, y = checks.make_batch(seed, per_class=per_class, num_classes=5, dim=6)
    if seed == 3:  # uneven: singletons, a class of 3, a class of 2, the rest 4
        y[y == 4] = torch.tensor([4, 6, 6, 7])
        y[(y == 3).nonzero()[0]] = 8
    loss = build_loss("npair", l2_reg_weight=0.01)
    assert loss(x, y).item() == pytest.approx(naive_npair(x, y, 0.01), rel=1e-10)


def test_every_sample_enters_the_cross_entropy() -> None:
    """At 4 and 6 per class every sample gets a cross-entropy gradient (at w = 0), a singleton
    none; the first-two-only rule (PML) left half of a 4-per-class batch out."""
    x, y = checks.make_batch(0, per_class=4, num_classes=5, dim=6)
    y = torch.cat([y, torch.tensor([1, 1, 9])])  # class 1 now has 6, plus one singleton
    x = torch.cat([x, torch.randn(3, 6, dtype=torch.float64)]).requires_grad_(True)
    build_loss("npair", l2_reg_weight=0.0)(x, y).backward()
    used = x.grad.norm(dim=1) > 0
    assert used[:-1].all() and not used[-1]
    a, p = NPairLoss.pairs(y)
    assert sorted(a.tolist() + p.tolist()) == list(range(len(y) - 1))  # even counts: disjoint


def test_pairs_of_odd_and_single_classes() -> None:
    a, p = NPairLoss.pairs(torch.tensor([5, 2, 5, 2, 5, 9]))
    assert a.tolist() == [1, 0, 4] and p.tolist() == [3, 2, 0]  # (s2, s0) closes the odd class
    # labels [3,1,3,2,1,3,2,1,3,2,1,2]: the first pair of each class is PML's (anchors 1,3,0 /
    # positives 4,6,2), the second pair uses the 3rd and 4th samples
    a, p = NPairLoss.pairs(torch.tensor([3, 1, 3, 2, 1, 3, 2, 1, 3, 2, 1, 2]))
    assert a.tolist() == [1, 7, 3, 9, 0, 5] and p.tolist() == [4, 10, 6, 11, 2, 8]


def test_regularizer_matches_tensorflow_reference() -> None:
    """Default w=0.001 equals TF ``npairs_loss(reg_lambda=0.002)``: 0.25·λ·(mean‖a‖² + mean‖p‖²)
    whenever every sample is in exactly one pair (even counts per class)."""
    for per_class in (2, 4):
        x, y = checks.make_batch(0, per_class=per_class, num_classes=4, dim=5)
        a, p = NPairLoss.pairs(y)
        tf_reg = 0.25 * 0.002 * ((x[a] ** 2).sum(1).mean() + (x[p] ** 2).sum(1).mean())
        diff = build_loss("npair")(x, y) - build_loss("npair", l2_reg_weight=0.0)(x, y)
        torch.testing.assert_close(diff, tf_reg)


@pytest.mark.parametrize("per_class", [2, 3, 4])
def test_gradcheck(per_class: int) -> None:
    x, y = checks.make_batch(3, per_class=per_class, num_classes=3, dim=4)
    checks.assert_gradcheck(build_loss("npair"), x, y)


def test_learns() -> None:
    checks.assert_learns(build_loss("npair"), per_class=4)


def test_edge_cases() -> None:
    loss = build_loss("npair", l2_reg_weight=0.0)
    batches = checks.edge_batches()
    checks.assert_zero(loss, *batches["one_class"])  # three pairs of one class: no negatives
    checks.assert_zero(loss, *batches["singletons"])
    checks.assert_finite_with_grad(
        build_loss("npair"), *batches["singletons"]
    )  # only the regularizer
    checks.assert_finite_with_grad(loss, *batches["one_singleton_class"])
    # Order inside a class selects the pairs, so invariance holds for permutations keeping it.
    x, y = checks.make_batch(5, per_class=3, num_classes=4, dim=5)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(2))
    keep_order = _within_class_order_preserving(perm, y)
    assert not torch.equal(keep_order, torch.arange(len(y)))
    torch.testing.assert_close(loss(x[keep_order], y[keep_order]), loss(x, y))


def _within_class_order_preserving(perm: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Reorder ``perm`` so that, within each class, original indices keep ascending order."""
    out = perm.clone()
    for c in y.unique():
        slots = torch.nonzero(y[perm] == c).squeeze(1)
        out[slots] = torch.sort(perm[slots]).values
    return out
