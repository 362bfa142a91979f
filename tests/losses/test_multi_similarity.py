"""Multi-Similarity loss: PML oracle (loss + miner), gradcheck, learning sanity, edge cases."""

from __future__ import annotations

import pytest
import torch
from pytorch_metric_learning import losses as pml
from pytorch_metric_learning import miners as pml_miners

from dmlstudy.losses import build_loss, loss_hyperparameters
from tests.losses import pair_checks as checks


def test_defaults() -> None:
    assert loss_hyperparameters("multi_similarity") == {
        "alpha": 2.0,
        "beta": 50.0,
        "threshold": 0.5,
        "epsilon": 0.1,
        "mining": True,
    }


@pytest.mark.parametrize("mining", [True, False])
@pytest.mark.parametrize(
    ("alpha", "beta", "threshold", "epsilon", "seed"),
    [(2, 50, 0.5, 0.1, 0), (1.5, 20, 0.2, 0.3, 1)],
)
def test_matches_pml(
    mining: bool, alpha: float, beta: float, threshold: float, epsilon: float, seed: int
) -> None:
    x, y = checks.make_batch(seed, per_class=3, num_classes=5, dim=6)
    ours = build_loss(
        "multi_similarity",
        alpha=alpha,
        beta=beta,
        threshold=threshold,
        epsilon=epsilon,
        mining=mining,
    )(x, y)
    loss = pml.MultiSimilarityLoss(alpha=alpha, beta=beta, base=threshold)
    theirs = (
        loss(x, y, pml_miners.MultiSimilarityMiner(epsilon=epsilon)(x, y)) if mining else loss(x, y)
    )
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("mining", [True, False])
def test_gradcheck(mining: bool) -> None:
    x, y = checks.make_batch(3, per_class=2, num_classes=3, dim=4)
    checks.assert_gradcheck(build_loss("multi_similarity", mining=mining, epsilon=0.5), x, y)


def test_learns() -> None:
    checks.assert_learns(build_loss("multi_similarity"))


def test_edge_cases() -> None:
    loss = build_loss("multi_similarity")
    batches = checks.edge_batches()
    checks.assert_zero(loss, *batches["one_class"])  # no negatives: the miner keeps nothing
    checks.assert_zero(loss, *batches["singletons"])  # no positives
    checks.assert_finite_with_grad(loss, *batches["one_singleton_class"])
    checks.assert_finite_with_grad(
        build_loss("multi_similarity", mining=False), *batches["singletons"]
    )
    x, y = checks.make_batch(5, per_class=3, num_classes=4, dim=5)
    checks.assert_permutation_invariant(loss, x, y)
    big = 1e3 * x  # normalization keeps it finite; large β·S stays stable
    checks.assert_finite_with_grad(build_loss("multi_similarity", beta=500.0), big, y)


def test_bad_scale_is_rejected() -> None:
    with pytest.raises(ValueError, match="beta 0 is outside"):
        build_loss("multi_similarity", beta=0.0)
