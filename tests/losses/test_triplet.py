"""Triplet loss with the three miners: PML oracle, gradcheck, learning sanity, edge cases."""

from __future__ import annotations

import pytest
import torch
from pytorch_metric_learning import losses as pml
from pytorch_metric_learning import miners as pml_miners

from dmlstudy.losses import build_loss, loss_hyperparameters
from tests.losses import pair_checks as checks

MINERS = ("all", "semihard", "hard")


def _pml_triplet(miner: str, margin: float, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    loss = pml.TripletMarginLoss(margin=margin)
    if miner == "all":
        return loss(x, y)
    if miner == "semihard":
        return loss(
            x, y, pml_miners.TripletMarginMiner(margin=margin, type_of_triplets="semihard")(x, y)
        )
    return loss(x, y, pml_miners.BatchHardMiner()(x, y))


def test_defaults() -> None:
    assert loss_hyperparameters("triplet") == {"margin": 0.1, "miner": "all"}


@pytest.mark.parametrize("miner", MINERS)
@pytest.mark.parametrize(("margin", "seed"), [(0.1, 0), (0.4, 1)])
def test_matches_pml(miner: str, margin: float, seed: int) -> None:
    x, y = checks.make_batch(seed, per_class=3, num_classes=5, dim=6)
    ours = build_loss("triplet", margin=margin, miner=miner)(x, y)
    theirs = _pml_triplet(miner, margin, x, y)
    assert ours.item() > 0
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("miner", MINERS)
def test_gradcheck(miner: str) -> None:
    x, y = checks.make_batch(3, per_class=2, num_classes=3, dim=4)
    checks.assert_gradcheck(build_loss("triplet", miner=miner, margin=0.3), x, y)


@pytest.mark.parametrize("miner", ["all", "hard"])
def test_learns(miner: str) -> None:
    checks.assert_learns(build_loss("triplet", miner=miner, margin=0.2))


@pytest.mark.parametrize("miner", MINERS)
def test_edge_cases(miner: str) -> None:
    loss = build_loss("triplet", miner=miner)
    batches = checks.edge_batches()
    checks.assert_zero(loss, *batches["one_class"])
    checks.assert_zero(loss, *batches["singletons"])
    checks.assert_finite_with_grad(loss, *batches["one_singleton_class"])
    x, y = checks.make_batch(5, per_class=3, num_classes=4, dim=5)
    checks.assert_permutation_invariant(loss, x, y)


def test_bad_miner_lists_choices() -> None:
    with pytest.raises(ValueError, match="all, semihard, hard"):
        build_loss("triplet", miner="batch_hard")
