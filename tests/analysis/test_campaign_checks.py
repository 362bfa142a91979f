"""The first-rung check of the tuning campaign, on simulated campaigns whose truth is known."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dmlstudy.analysis.campaign_checks import (
    first_rung_check,
    p_text,
    search_trials_at_first_rung,
)


def _campaign(rng: np.random.Generator, *, effect: bool, losses: int = 5, n: int = 12):
    """``losses`` losses of ``n`` search trials, lr log-uniform on a loss-specific range; 5 of
    each pruned at the first rung: the 5 lowest lrs (effect) or 5 at random (no effect)."""
    rows = []
    for i in range(losses):
        lr = 10 ** rng.uniform(-4 + 0.3 * i, -2 + 0.3 * i, n)  # losses differ in their ranges
        pruned = np.zeros(n, bool)
        pruned[np.argsort(lr)[:5] if effect else rng.choice(n, 5, replace=False)] = True
        rows += [{"loss": f"l{i}", "lr": v, "pruned_first": p} for v, p in zip(lr, pruned)]
    return pd.DataFrame(rows)


def test_a_first_rung_that_prunes_the_low_lrs_is_detected():
    r = first_rung_check(_campaign(np.random.default_rng(1), effect=True), n_perm=999)
    assert r.effect == pytest.approx(-1.0)
    assert r.p == pytest.approx(1 / 1000)
    assert p_text(r.p, r.n_perm).startswith("p ≤ 0.001")
    assert (r.per_loss["p (Mann-Whitney)"] < 0.01).all()
    assert (r.per_loss["median lr, pruned"] < r.per_loss["median lr, the rest"]).all()


def test_without_an_effect_the_pooled_test_keeps_its_level():
    """Random pruning within each loss: the permutation test rejects at 5% about 5% of the time
    (200 simulated campaigns; a binomial 99.9% band around 10 rejections is 2 to 22)."""
    rng = np.random.default_rng(7)
    rejections = sum(
        first_rung_check(_campaign(rng, effect=False), n_perm=199, seed=s).p <= 0.05
        for s in range(200)
    )
    assert 2 <= rejections <= 22


def test_the_permutation_respects_losses():
    """The loss with the low lr range has most of its trials pruned, the other few: pooled over
    losses the pruned trials have the lower lrs, but within each loss pruning is random. The
    test shuffles within losses, so it sees no effect (a pooled rank test would see a large
    one)."""
    rng = np.random.default_rng(3)
    rows = []
    for i, (lo, prune_share) in enumerate([(-5, 0.7), (-2, 0.2)]):
        lr = 10 ** rng.uniform(lo, lo + 1, 20)
        pruned = rng.random(20) < prune_share
        rows += [{"loss": f"l{i}", "lr": v, "pruned_first": p} for v, p in zip(lr, pruned)]
    r = first_rung_check(pd.DataFrame(rows), n_perm=999)
    assert r.p > 0.05


def test_the_record_is_read_for_trials_that_met_the_first_rung():
    def row(trial, state, epochs, pruned_at="", published=False, phase="search", lr=1e-3):
        return {
            "loss": "a",
            "study": "a",
            "phase": phase,
            "trial": trial,
            "state": state,
            "published": published,
            "point": json.dumps({"train.lr": lr, "margin": 0.1}),
            "epochs": epochs,
            "pruned_at": pruned_at,
        }

    trials = pd.DataFrame(
        [
            row(0, "COMPLETE", 80, published=True),  # trial 0: never pruned, left out
            row(1, "PRUNED", 3, 3, lr=1e-4),  # pruned at the first rung
            row(2, "PRUNED", 9, 9),  # pruned later: trained past it
            row(3, "COMPLETE", 60),
            row(4, "PRUNED", 2),  # cut by the budget before the rung: left out
            row(5, "WAITING", ""),
            row(6, "COMPLETE", 70, phase="confirm"),
        ]
    )
    f = search_trials_at_first_rung(trials, 3)
    assert f["pruned_first"].tolist() == [True, False, False]
    assert f["lr"].tolist() == [1e-4, 1e-3, 1e-3]


def test_a_record_without_search_trials_gives_an_empty_table():
    """A campaign that has not searched yet (make compare's first moments): no rows, no error."""
    empty = pd.DataFrame(columns=["loss", "lr", "pruned_first"])
    r = first_rung_check(empty, n_perm=9)
    assert r.per_loss.empty
    assert list(r.per_loss.columns)[:2] == ["pruned at rung 1", "trained past it"]
    assert np.isnan(r.effect) and np.isnan(r.p)
