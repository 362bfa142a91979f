"""Miners against pytorch-metric-learning's miners (same index sets) and against plain
definitions."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning import miners as pml_miners
from pytorch_metric_learning.utils import loss_and_miner_utils as lmu

from dmlstudy.losses.miners import (
    euclidean_distance,
    gram,
    mine_triplets,
    multi_similarity_mining,
    pair_masks,
    triplet_indices,
)
from tests.losses.pair_checks import make_batch


def _as_set(*indices: torch.Tensor) -> set[tuple[int, ...]]:
    return set(zip(*(i.tolist() for i in indices)))


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    return make_batch(seed, per_class=3, num_classes=5, dim=6)


def test_pair_masks_match_definition() -> None:
    y = torch.tensor([3, 1, 3, 2, 1])
    pos, neg = pair_masks(y)
    a1, p, a2, n = lmu.get_all_pairs_indices(y)
    assert _as_set(*torch.nonzero(pos, as_tuple=True)) == _as_set(a1, p)
    assert _as_set(*torch.nonzero(neg, as_tuple=True)) == _as_set(a2, n)
    assert not (pos & neg).any() and not pos.diagonal().any()


def test_euclidean_distance_matches_cdist_and_has_zero_grad_at_zero() -> None:
    x, _ = _batch()
    torch.testing.assert_close(euclidean_distance(x), torch.cdist(x, x), rtol=1e-7, atol=1e-7)
    x = torch.ones(2, 3, dtype=torch.float64, requires_grad=True)  # identical points: d = 0
    euclidean_distance(x).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_gram_and_distance_gradients() -> None:
    """The Gram matrix's one-matmul backward and the safe square root against finite differences."""
    x, _ = make_batch(0, per_class=2, num_classes=3, dim=4)
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(gram, (x,))
    weights = torch.rand(6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    assert torch.autograd.gradcheck(lambda a: (euclidean_distance(a) * weights).sum(), (x,))


@pytest.mark.parametrize("seed", [0, 1])
def test_all_triplets_match_pml(seed: int) -> None:
    x, y = _batch(seed)
    ours = _as_set(*triplet_indices(*mine_triplets(euclidean_distance(x), y, "all", 0.1)))
    assert ours == _as_set(*lmu.get_all_triplets_indices(y))


@pytest.mark.parametrize("margin", [0.1, 0.3])
def test_semihard_triplets_match_pml(margin: float) -> None:
    x, y = _batch(2)
    xn = F.normalize(x, dim=1)
    ours = _as_set(*triplet_indices(*mine_triplets(euclidean_distance(xn), y, "semihard", margin)))
    theirs = _as_set(
        *pml_miners.TripletMarginMiner(margin=margin, type_of_triplets="semihard")(x, y)
    )
    assert ours == theirs and len(ours) > 0


def test_batch_hard_matches_pml() -> None:
    x, y = _batch(3)
    y = y.clone()
    y[0] = 99  # a singleton anchor must be dropped
    xn = F.normalize(x, dim=1)
    a, p, n = triplet_indices(*mine_triplets(euclidean_distance(xn), y, "hard", 0.1))
    assert len(a) == len(set(a.tolist())) == len(y) - 1 and 0 not in a.tolist()
    assert _as_set(a, p, n) == _as_set(*pml_miners.BatchHardMiner()(x, y))


@pytest.mark.parametrize("epsilon", [0.1, 0.5])
def test_multi_similarity_mining_matches_pml(epsilon: float) -> None:
    x, y = _batch(4)
    xn = F.normalize(x, dim=1)
    pos, neg = multi_similarity_mining(xn @ xn.T, y, epsilon)
    a1, p, a2, n = pml_miners.MultiSimilarityMiner(epsilon=epsilon)(x, y)
    assert _as_set(*torch.nonzero(pos, as_tuple=True)) == _as_set(a1, p)
    assert _as_set(*torch.nonzero(neg, as_tuple=True)) == _as_set(a2, n)
    all_pos, all_neg = pair_masks(y)
    assert 0 < pos.sum() <= all_pos.sum() and 0 < neg.sum() < all_neg.sum()  # it does filter


def test_miners_handle_batches_without_valid_tuples() -> None:
    x = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for y in (torch.zeros(4, dtype=torch.long), torch.arange(4)):
        for strategy in ("all", "semihard", "hard"):
            a, p, n = triplet_indices(*mine_triplets(euclidean_distance(x), y, strategy, 0.1))
            assert len(a) == len(p) == len(n) == 0
        pos, neg = multi_similarity_mining(x @ x.T, y, 0.1)
        assert not pos.any() and not neg.any()


def test_unknown_strategy_lists_choices() -> None:
    x, y = _batch()
    with pytest.raises(ValueError, match="all, semihard, hard"):
        mine_triplets(euclidean_distance(x), y, "hardest", 0.1)  # type: ignore[arg-type]
