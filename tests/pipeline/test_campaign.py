"""The tuning campaign: equal trials per loss, sampled space, confirmation, winners."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from dmlstudy.config import ParamsError, config_from_dict
from dmlstudy.pipeline import campaign as C

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def raw() -> dict:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw = copy.deepcopy(raw)
    raw["study"]["losses"] = ["contrastive", "proxy_anchor"]
    raw["tuning"] = {
        "dataset": "omniglot",
        "trials": 4,
        "seed": 0,
        "budget": {"epochs": 2},
        "confirm_top": 2,
        "confirm_seeds": [0, 1],
        "space": {
            "common": {"train.lr": {"log": [1e-4, 1e-2]}},
            "contrastive": {"neg_margin": {"uniform": [0.3, 1.0]}},
            "proxy_anchor": {"alpha": {"choice": [16.0, 32.0]}},
        },
    }
    return raw


def test_trials_are_equal_in_number_seeded_and_start_from_published(raw):
    config = config_from_dict(raw)
    for loss in ("contrastive", "proxy_anchor"):
        points = C.trial_points(config, loss)
        assert len(points) == 4 and points[0] == {}
        assert points == C.trial_points(config, loss)  # reproducible
        assert all(1e-4 <= p["train.lr"] <= 1e-2 for p in points[1:])
    assert all(p["alpha"] in (16.0, 32.0) for p in C.trial_points(config, "proxy_anchor")[1:])


def test_campaign_searches_then_confirms_the_best_on_every_seed(raw, tmp_path):
    config = config_from_dict(raw)
    seen = []

    def fake(settings):  # val MAP@R = lr: the highest-lr trials must be confirmed
        seen.extend(settings)
        return [
            {
                "val": {"map@r": s.lr + 0.001 * s.seed, "recall@1": 0.5},
                "best_epoch": 0,
                "epochs_run": s.epochs,
                "converged": True,
                "train_seconds": 1.0,
            }
            for s in settings
        ]

    trials = C.run_campaign(config, prepared_dir="p", out_dir=tmp_path, launcher=fake)
    assert all(not s.evaluate_test for s in seen)
    search, confirm = trials[trials["phase"] == "search"], trials[trials["phase"] == "confirm"]
    assert search.groupby("loss").size().tolist() == [4, 4]
    assert {s.epochs for s in seen[:8]} == {2}  # search budget; confirmation: full protocol
    assert {s.epochs for s in seen[8:]} == {config.datasets["omniglot"].train["epochs"]}
    for loss, group in search.groupby("loss"):
        top = set(group.sort_values("val_map@r", ascending=False)["trial"].head(2))
        assert set(confirm[confirm["loss"] == loss]["trial"]) == top
        assert sorted(confirm[confirm["loss"] == loss]["seed"]) == [0, 0, 1, 1]
    best = C.winners(trials)
    assert len(best) == 2 and (best["count"] == 2).all()
    overrides = C.winner_overrides(config, best)
    top_lr = search[search["loss"] == "contrastive"]["point"].map(json.loads)
    assert overrides["contrastive"]["train"]["lr"] == max(p.get("train.lr", 0) for p in top_lr)


def test_winner_overrides_keep_only_departures(raw):
    config = config_from_dict(raw)
    best = pd.DataFrame(
        [
            {"loss": "proxy_anchor", "point": json.dumps({"alpha": 32.0, "margin": 0.2})},
            {"loss": "rsw", "point": json.dumps({"train.layer_norm": True, "train.lr": 0.002})},
            {"loss": "triplet", "point": json.dumps({"train.layer_norm": False})},
        ]
    )
    assert C.winner_overrides(config, best) == {
        "proxy_anchor": {"margin": 0.2},
        "rsw": {"train": {"lr": 0.002}},  # RSW's protocol head already has the LayerNorm
        "triplet": {},
    }


@pytest.mark.parametrize(
    ("space", "match"),
    [
        ({"contrastive": {"neg_margin": {"unifrom": [0, 1]}}}, "did you mean 'uniform'"),
        ({"contrastive": {"neg_margn": {"uniform": [0.1, 1.0]}}}, "neg_margn"),
        ({"contrastive": {"neg_margin": {"uniform": [1.0, 0.1]}}}, "low < high"),
        ({"common": {"margin": {"uniform": [0.1, 1.0]}}}, "common dimensions"),
        ({"tripplet": {}}, "did you mean 'triplet'"),
        ({"common": {"train.lr": {"log": [0.0, 1.0]}}}, "low > 0"),
    ],
)
def test_bad_spaces_are_named(raw, space, match):
    raw["tuning"]["space"] = space
    with pytest.raises(ParamsError, match=match):
        config_from_dict(raw)


def test_search_only_loss_params_and_check_before_compute(raw):
    """tuning.loss_params shape the short search trials only; check_params builds every trial
    and names a trial its loss rejects before any training."""
    from dmlstudy.pipeline.check_params import check_campaign

    raw["study"]["losses"] = ["rsw"]
    raw["tuning"]["space"] = {"rsw": {"alpha": {"uniform": [3.0, 30.0]}}}
    raw["tuning"]["budget"] = {"epochs": 5, "schedule": "cosine", "patience": None}
    raw["tuning"]["loss_params"] = {"rsw": {"phase2_epochs": 0}}
    config = config_from_dict(raw)
    trials = C.search_settings(config, "p", "o", ["rsw"])
    assert all(s.loss_params["phase2_epochs"] == 0 for *_, s in trials)
    full = C.confirm_settings(config, "rsw", trials[1][2], 0, Path("o"), "p")
    assert full.loss_params["phase2_epochs"] == 30 and full.schedule == "plateau"
    assert check_campaign(config) == 4
    raw["tuning"]["loss_params"] = {}
    with pytest.raises(ParamsError, match=r"tuning search trial 0 of rsw.*phase2_epochs"):
        check_campaign(config_from_dict(raw))
