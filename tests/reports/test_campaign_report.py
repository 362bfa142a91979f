"""The tuning campaign as a report section, from the files the campaign writes."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from dmlstudy.config import config_from_dict
from dmlstudy.reports.campaign_report import campaign_report, used_by_run
from dmlstudy.study import campaign as C
from tests.support.campaign_stand_in import StandIn

REPO = Path(__file__).resolve().parents[2]
LOSSES = ["contrastive", "proxy_anchor"]


@pytest.fixture()
def config():
    raw = copy.deepcopy(yaml.safe_load((REPO / "params.yaml").read_text()))
    raw["study"]["losses"] = LOSSES
    raw["tuning"].update(
        epochs_per_loss=40,
        confirm_top=2,
        confirm_seeds=[0, 1],
        sampler={"tpe": {"seed": 0, "n_startup_trials": 3}},
        pruner={"hyperband": {"min_resource": 2, "reduction_factor": 2}},
    )
    raw["tuning"]["space"] = {
        "common": {"train.lr": {"log": [1e-4, 1e-2]}},
        "contrastive": {"neg_margin": {"uniform": [0.3, 1.0]}},
        "proxy_anchor": {"alpha": {"choice": [16.0, 32.0]}},
    }
    return config_from_dict(raw)


def _write(config, folder: Path):
    """The record of a stand-in campaign (val MAP@R grows with lr and seed) in ``folder``."""
    camp = C.Campaign(
        config,
        prepared_dir=Path("p"),
        out_dir=folder / "runs",
        results=folder,
        trainer=StandIn({loss: 8 for loss in LOSSES}),
    )
    camp.work(LOSSES)
    return pd.read_csv(folder / "trials.csv"), pd.read_csv(folder / "winners.csv")


def test_not_run_says_so_and_still_shows_the_declared_space(config, tmp_path):
    rep = campaign_report(config, "omniglot", tmp_path / "none", {k: {} for k in LOSSES})
    assert not rep.ran and rep.message.startswith("The tuning campaign has not been run")
    assert "40 training epochs" in rep.message
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
    assert rep.ran and rep.message.startswith("Equal effort: every loss had 40 training epochs")
    assert rep.effort["epochs spent"].tolist() == [40, 40]
    assert (rep.effort["trials"] >= 5).all()
    mean = best.set_index("loss").loc["contrastive", "mean"]
    assert rep.best.loc["contrastive", "val MAP@R (mean over seeds)"] == f"{100 * mean:.1f}"
    assert rep.best.loc["contrastive", "used by the evaluated runs"] == "yes"
    assert rep.best.loc["proxy_anchor", "used by the evaluated runs"].startswith("no: copy")
    chosen = rep.confirmation[rep.confirmation["chosen"] == "yes"]
    assert len(chosen) == 2 and (rep.confirmation["seeds"] == 2).all()
    assert len(rep.confirmation) == 4  # the top 2 of each loss
    for table in (rep.effort, rep.best, rep.confirmation):
        assert not table.isna().any().any()
    # each loss's chosen trial against its runner-up, paired over the 2 seeds
    assert list(rep.margins.index) == ["contrastive", "proxy_anchor"]
    assert (rep.margins["seeds"] == 2).all()
    assert rep.margins_note.startswith("Confirmation margins: the seeds separate")


def test_unequal_effort_is_flagged(config, tmp_path):
    _write(config, tmp_path / "t")
    summary = pd.read_csv(tmp_path / "t" / "summary.csv")
    summary.loc[summary["loss"] == "proxy_anchor", "epochs_spent"] = 12
    summary.to_csv(tmp_path / "t" / "summary.csv", index=False)
    rep = campaign_report(config, "omniglot", tmp_path / "t", {k: {} for k in LOSSES})
    assert rep.message.startswith("UNEQUAL tuning effort")
    assert "proxy_anchor (12 epochs)" in rep.message


def test_campaign_v1_is_shown_until_the_new_record_exists(config, tmp_path):
    v1 = REPO / "results" / "tuning" / "omniglot" / "v1"
    (tmp_path / "t" / "v1").mkdir(parents=True)
    for name in ("trials.csv", "winners.csv"):
        (tmp_path / "t" / "v1" / name).write_text((v1 / name).read_text())
    rep = campaign_report(config, "omniglot", tmp_path / "t", {k: {} for k in LOSSES})
    assert rep.ran and rep.message.startswith("Campaign v1")
    assert "8 search trials" in rep.message and "seeds [0, 1]" in rep.message
    assert rep.effort["search trials"].tolist() == [8, 8]
    assert set(rep.best.index) == set(LOSSES)


def test_used_by_run_reads_train_and_loss_values():
    assert used_by_run({}, {"loss_params": {}})
    assert not used_by_run({"train.layer_norm": True}, {"layer_norm": False, "loss_params": {}})


def test_a_campaign_under_way_leaves_v1_in_charge_and_says_how_far_it_is(config, tmp_path):
    """A partial Optuna record (some losses not confirmed yet) does not replace campaign v1's
    section: params.yaml still holds v1's winners, so the page shows v1 plus the progress."""
    v1 = REPO / "results" / "tuning" / "omniglot" / "v1"
    (tmp_path / "t" / "v1").mkdir(parents=True)
    for name in ("trials.csv", "winners.csv"):
        (tmp_path / "t" / "v1" / name).write_text((v1 / name).read_text())
    cols = "loss,study,trials,complete,pruned,stopped_by_budget,diverged,collapsed,epochs_spent,"
    (tmp_path / "t" / "summary.csv").write_text(
        cols + "epochs_per_loss\n"
        f"{LOSSES[0]},{LOSSES[0]},9,2,7,0,0,1,200,200\n{LOSSES[1]},{LOSSES[1]},2,0,1,0,0,0,40,200\n"
    )
    (tmp_path / "t" / "trials.csv").write_text("loss,phase,state,trial\n")
    (tmp_path / "t" / "winners.csv").write_text("loss,trial\n")
    rep = campaign_report(config, "omniglot", tmp_path / "t", {k: {} for k in LOSSES})
    assert rep.message.startswith("Campaign v1")
    assert f"1 of 2 losses searched ({LOSSES[0]}), 0 confirmed" in rep.message


def test_the_report_lists_every_study_and_checks_the_first_rung(config, tmp_path):
    """A widened space (a second study of contrastive) is disclosed with its epochs; the
    first-rung check reads the same record (the stand-in's trials all pass the first rung, so
    the sentence counts them and says there is nothing to compare; the comparison itself is
    tested on simulated campaigns in tests/analysis/test_campaign_checks.py)."""
    _write(config, tmp_path / "t")
    wider = copy.deepcopy(config.tuning.space)
    wider["contrastive"] = {"neg_margin": {"uniform": [0.1, 1.0]}}
    tuning = config.tuning.model_copy(update={"space": wider})
    _write(config.model_copy(update={"tuning": tuning}), tmp_path / "t")
    rep = campaign_report(config, "omniglot", tmp_path / "t", {k: {} for k in LOSSES})
    studies = rep.effort["studies (epochs)"]
    assert studies["contrastive"] == "contrastive (40), contrastive.2 (40)"
    assert studies["proxy_anchor"] == "proxy_anchor (40)"
    trials = pd.read_csv(tmp_path / "t" / "trials.csv")
    search = trials[(trials["phase"] == "search") & ~trials["published"]]
    assert (search["pruned_at"] != 2).all()
    assert rep.first_rung_note == (
        f"Fast starters? Hyperband's first rung (epoch 2) pruned 0 of the "
        f"{int((search['epochs'] > 2).sum())} search trials that reached it. No loss has trials "
        "on both sides of it: nothing to compare."
    )
    assert set(rep.first_rung.index) <= set(LOSSES)


def test_the_report_does_not_import_optuna():
    """optuna imports tqdm.auto, whose "IProgress not found" warning would land on the
    evaluation page as a stderr block: the campaign section reads the record without it."""
    import subprocess
    import sys

    code = (
        "import sys, dmlstudy.reports.campaign_report; "
        "assert 'optuna' not in sys.modules and 'tqdm.auto' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_study_space_reads_what_the_campaign_recorded(config, tmp_path):
    from dmlstudy.reports.campaign_report import study_space

    _write(config, tmp_path / "t")
    assert study_space(tmp_path / "t" / "optuna.db", "contrastive") == config.tuning.loss_space(
        "contrastive"
    )
    with pytest.raises(ValueError, match="has no recorded space"):
        study_space(tmp_path / "t" / "optuna.db", "nope")
