"""The campaign record's checks (the first Hyperband rung; the confirmation margins), on
simulated campaigns whose truth is known."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dmlstudy.analysis.campaign_checks import (
    confirmation_margins,
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


def _confirmations(rng: np.random.Generator, lead: float, seeds: int = 3) -> pd.DataFrame:
    """Two candidates of 5 losses on ``seeds`` seeds: a seed effect (SD 1.5 points) shared by
    both candidates of a seed, noise SD 0.8 points, candidate 1 ahead by ``lead`` points."""
    rows = []
    for i in range(5):
        for seed in range(seeds):
            shared = rng.normal(50, 1.5)
            for trial, mu in ((1, lead), (2, 0.0)):
                value = (shared + mu + rng.normal(0, 0.8)) / 100
                rows.append({"loss": f"l{i}", "trial": trial, "seed": seed, "val_map@r": value})
    return pd.DataFrame(rows)


WINNERS = pd.DataFrame({"loss": [f"l{i}" for i in range(5)], "trial": 1})


@pytest.mark.parametrize("lead", [0.0, 1.0])
def test_the_margin_interval_covers_the_true_lead_at_its_level(lead):
    """Chosen fixed in advance (not by the data): the seed-paired t-interval covers the true lead
    in 95% of simulated campaigns (2,000 losses: MC SE 0.005), the shared seed effect cancelled."""
    rng = np.random.default_rng(3)
    hits = []
    for _ in range(400):
        m = confirmation_margins(_confirmations(rng, lead), WINNERS)
        hits += ((m["ci low"] <= lead) & (lead <= m["ci high"])).tolist()
    assert 0.93 <= np.mean(hits) <= 0.97, np.mean(hits)


def test_a_large_lead_is_separated_and_no_lead_mostly_is_not():
    rng = np.random.default_rng(4)
    big = pd.concat([confirmation_margins(_confirmations(rng, 4.0, 5), WINNERS) for _ in range(40)])
    none = pd.concat([confirmation_margins(_confirmations(rng, 0.0), WINNERS) for _ in range(40)])
    assert big["separated"].mean() > 0.9 and (big["lead"] > 0).all()
    assert none["separated"].mean() < 0.1  # its false-positive rate: 5%


def test_margins_pair_by_seed_and_skip_losses_without_a_second_candidate():
    c = pd.DataFrame(
        {
            "loss": ["a"] * 4 + ["b"] * 2,
            "trial": [1, 1, 2, 2, 3, 3],
            "seed": [0, 1, 1, 0, 0, 1],  # seed order differs between the candidates
            "val_map@r": [0.50, 0.60, 0.59, 0.49, 0.5, 0.5],
        }
    )
    m = confirmation_margins(c, pd.DataFrame({"loss": ["a", "b"], "trial": [1, 3]}))
    assert list(m.index) == ["a"]  # b: one candidate, nothing to compare
    assert m.loc["a", "lead"] == pytest.approx(1.0) and m.loc["a", "separated"]  # paired: SD 0
