"""N-pair loss: PML oracle (same pairing + L2 regularizer), gradcheck, learning sanity, edge
cases."""

from __future__ import annotations

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


def test_defaults() -> None:
    assert loss_hyperparameters("npair") == {"l2_reg_weight": 0.001}
    assert NPairLoss.normalize_embeddings is False


@pytest.mark.parametrize(
    ("weight", "per_class", "seed"), [(0.001, 2, 0), (0.0, 3, 1), (0.05, 4, 2)]
)
def test_matches_pml(weight: float, per_class: int, seed: int) -> None:
    x, y = checks.make_batch(seed, per_class=per_class, num_classes=5, dim=6)
    ours = build_loss("npair", l2_reg_weight=weight)(x, y)
    torch.testing.assert_close(ours, _pml_npair(weight)(x, y), rtol=1e-5, atol=1e-8)


def test_regularizer_matches_tensorflow_reference() -> None:
    """Default w=0.001 equals TF ``npairs_loss(reg_lambda=0.002)``: 0.25·λ·(mean‖a‖² + mean‖p‖²)."""
    x, y = checks.make_batch(0, per_class=2, num_classes=4, dim=5)
    a, p = NPairLoss.first_pairs(y)
    tf_reg = 0.25 * 0.002 * ((x[a] ** 2).sum(1).mean() + (x[p] ** 2).sum(1).mean())
    diff = build_loss("npair")(x, y) - build_loss("npair", l2_reg_weight=0.0)(x, y)
    torch.testing.assert_close(diff, tf_reg)


def test_first_pairs_follow_batch_order() -> None:
    a, p = NPairLoss.first_pairs(torch.tensor([5, 2, 5, 2, 5, 9]))
    assert a.tolist() == [1, 0] and p.tolist() == [3, 2]  # labels 2 then 5; 9 has no pair


def test_gradcheck() -> None:
    x, y = checks.make_batch(3, per_class=2, num_classes=3, dim=4)
    checks.assert_gradcheck(build_loss("npair"), x, y)


def test_learns() -> None:
    checks.assert_learns(build_loss("npair"), per_class=2)  # only the first two of a class are used


def test_edge_cases() -> None:
    loss = build_loss("npair", l2_reg_weight=0.0)
    batches = checks.edge_batches()
    checks.assert_zero(loss, *batches["one_class"])  # one pair: a 1-way softmax
    checks.assert_zero(loss, *batches["singletons"])
    checks.assert_finite_with_grad(
        build_loss("npair"), *batches["singletons"]
    )  # only the regularizer
    checks.assert_finite_with_grad(loss, *batches["one_singleton_class"])
    # Order inside a class selects the pair, so invariance holds for permutations keeping it.
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
