"""The tuning campaign as a report section, from the files the campaign writes."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from dmlstudy.config import config_from_dict
from dmlstudy.pipeline import campaign as C
from dmlstudy.pipeline.campaign_report import campaign_report, used_by_run

REPO = Path(__file__).resolve().parents[2]
LOSSES = ["contrastive", "proxy_anchor"]


@pytest.fixture()
def config():
    raw = copy.deepcopy(yaml.safe_load((REPO / "params.yaml").read_text()))
    raw["study"]["losses"] = LOSSES
    raw["tuning"].update(trials=3, confirm_top=2, confirm_seeds=[0, 1], budget={"epochs": 2})
    raw["tuning"]["space"] = {
        "common": {"train.lr": {"log": [1e-4, 1e-2]}},
        "contrastive": {"neg_margin": {"uniform": [0.3, 1.0]}},
        "proxy_anchor": {"alpha": {"choice": [16.0, 32.0]}},
    }
    return config_from_dict(raw)


def _fake(settings):  # val MAP@R grows with lr and seed
    return [
        {
            "val": {"map@r": 10 * s.lr + 0.001 * s.seed, "recall@1": 0.5},
            "best_epoch": 0,
            "epochs_run": 2,
            "converged": True,
            "train_seconds": 1.0,
        }
        for s in settings
    ]


def _write(config, folder: Path):
    trials = C.run_campaign(config, prepared_dir="p", out_dir=folder / "runs", launcher=_fake)
    folder.mkdir(parents=True, exist_ok=True)
    trials.to_csv(folder / "trials.csv", index=False)
    best = C.winners(trials)
    best.to_csv(folder / "winners.csv", index=False)
    return trials, best


def test_not_run_says_so_and_still_shows_the_declared_space(config, tmp_path):
    rep = campaign_report(config, "omniglot", tmp_path / "none", {k: {} for k in LOSSES})
    assert not rep.ran and rep.message.startswith("The tuning campaign has not been run")
    assert rep.space.loc[("contrastive", "neg_margin"), "searched over"] == "uniform [0.3, 1]"
    assert rep.space.loc[("proxy_anchor", "train.lr"), "searched over"] == (
        "log-uniform [0.0001, 0.01]"
    )


def test_ran_shows_equal_effort_best_values_and_confirmation(config, tmp_path):
    _, best = _write(config, tmp_path / "t")
    winner = json.loads(best.set_index("loss").loc["contrastive", "point"])
    settings = {  # contrastive's runs used its winner, proxy_anchor's did not
        "contrastive": {
            "lr": winner.get("train.lr"),
            "loss_params": {k: v for k, v in winner.items() if not k.startswith("train.")},
        },
        "proxy_anchor": {"lr": 1.0, "loss_params": {}},
    }
    rep = campaign_report(config, "omniglot", tmp_path / "t", settings)
    assert rep.ran and rep.message.startswith("Equal effort: every loss had 3 search trials")
    assert rep.effort["search trials"].tolist() == [3, 3]
    assert rep.effort["confirmation runs"].tolist() == [4, 4]  # top 2 x 2 seeds
    mean = best.set_index("loss").loc["contrastive", "mean"]
    assert rep.best.loc["contrastive", "val MAP@R (mean over seeds)"] == f"{100 * mean:.1f}"
    assert rep.best.loc["contrastive", "used by the evaluated runs"] == "yes"
    assert rep.best.loc["proxy_anchor", "used by the evaluated runs"].startswith("no: copy")
    chosen = rep.confirmation[rep.confirmation["chosen"] == "yes"]
    assert len(chosen) == 2 and (rep.confirmation["seeds"] == 2).all()
    for table in (rep.effort, rep.best, rep.confirmation):
        assert not table.isna().any().any()


def test_unequal_effort_is_flagged(config, tmp_path):
    trials, _ = _write(config, tmp_path / "t")
    drop = trials[(trials["loss"] == "proxy_anchor") & (trials["phase"] == "search")].index[-1]
    trials.drop(index=drop).to_csv(tmp_path / "t" / "trials.csv", index=False)
    rep = campaign_report(config, "omniglot", tmp_path / "t", {k: {} for k in LOSSES})
    assert rep.message.startswith("UNEQUAL tuning effort") and "proxy_anchor: 2" in rep.message


def test_used_by_run_reads_train_and_loss_values():
    assert used_by_run({}, {"loss_params": {}})
    assert not used_by_run({"train.layer_norm": True}, {"layer_norm": False, "loss_params": {}})
