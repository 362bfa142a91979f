"""The tuning campaign on Optuna: equal epoch budgets, trial 0 = published values, Hyperband
pruning at the validation rounds, resumable storage, per-loss merges, confirmations, the record.

The trainings are stand-ins (``StandIn``: a val MAP@R curve that grows with lr, one checkpoint
file per run folder so that a retried trial resumes) except one tiny real training."""

from __future__ import annotations

import copy
import json
import math
import threading
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
import yaml

from dmlstudy.config import ParamsError, config_from_dict
from dmlstudy.study import campaign as C
from dmlstudy.study import campaign_record as R
from tests.support.campaign_stand_in import Killed, StandIn
from tests.support.params import one_study

REPO = Path(__file__).resolve().parents[2]
LOSSES = ["contrastive", "proxy_anchor"]


def _raw(**tuning: Any) -> dict:
    raw = copy.deepcopy(yaml.safe_load((REPO / "params.yaml").read_text()))
    raw["study"]["losses"] = LOSSES
    one_study(raw)
    raw["tuning"] = {
        "dataset": "omniglot",
        "seed": 0,
        "epochs_per_loss": 60,
        "sampler": {"tpe": {"seed": 0, "n_startup_trials": 3}},
        "pruner": {"hyperband": {"min_resource": 2, "reduction_factor": 2}},
        "confirm_top": 2,
        "confirm_seeds": [0, 1],
        "space": {
            "common": {"train.lr": {"log": [1e-4, 1e-2]}},
            "contrastive": {"neg_margin": {"uniform": [0.3, 1.0]}},
            "proxy_anchor": {"alpha": {"choice": [16.0, 32.0]}},
        },
        **tuning,
    }
    return raw


@pytest.fixture()
def config():
    return config_from_dict(_raw())


def _campaign(config, tmp_path: Path, trainer, out: str = "runs", **kw) -> C.Campaign:
    return C.Campaign(
        config,
        prepared_dir=Path("p"),
        out_dir=tmp_path / out,
        results=tmp_path / "results",
        trainer=trainer,
        poll_s=0.05,
        **kw,
    )


def _search(storage, study: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=study, storage=storage).get_trials()


def test_trial_0_is_the_published_values_and_never_pruned(config, tmp_path):
    trainer = StandIn({"contrastive": 12, "proxy_anchor": 12})
    camp = _campaign(config, tmp_path, trainer)
    camp.work(["contrastive"])
    first = _search(camp.storage, "contrastive")[0]
    assert first.number == 0 and first.user_attrs["published"]
    assert first.params == {"train.lr": 0.001, "neg_margin": 0.5}  # protocol lr, losses.contrastive
    assert first.user_attrs["point"] == C.published_point(config, "contrastive")
    assert first.state == optuna.trial.TrialState.COMPLETE and first.user_attrs["epochs"] == 12
    # a space key the loss section does not set: the constructor's default
    raw = _raw()
    raw["tuning"]["space"]["contrastive"]["distance"] = {"choice": ["cosine", "euclidean"]}
    with pytest.raises(ParamsError):  # (contrastive has no such keyword: the schema refuses it)
        config_from_dict(raw)


def test_equal_epoch_budgets_cheap_trials_get_more_trials_not_more_epochs(config, tmp_path):
    trainer = StandIn({"contrastive": 20, "proxy_anchor": 5})
    camp = _campaign(config, tmp_path, trainer)
    camp.work(LOSSES)
    summary = R.summary(camp.storage, config).set_index("loss")
    assert (summary["epochs_spent"] == 60).all()  # the budget, exactly: the last trial is cut
    assert summary.loc["proxy_anchor", "trials"] > summary.loc["contrastive", "trials"]
    # (a trial the budget cut may be confirmed in its own folder: those epochs are no search's)
    search = pd.DataFrame(trainer.searched, columns=["run", "epoch"])
    per_loss = search.groupby(search["run"].map(lambda r: Path(r).parts[-2])).size()
    assert per_loss.to_dict() == {"contrastive": 60, "proxy_anchor": 60}
    trials = R.trials_table(camp.storage)
    assert set(trials[trials["stopped"] == "budget"]["loss"]) <= set(LOSSES)


def test_pruning_happens_at_the_hyperband_rungs(config, tmp_path):
    config = config_from_dict(_raw(epochs_per_loss=200))
    camp = _campaign(config, tmp_path, StandIn({"contrastive": 16, "proxy_anchor": 16}))
    camp.work(["contrastive"])
    trials = R.trials_table(camp.storage)
    pruned = trials[trials["stopped"] == "pruner"]
    assert len(pruned) > 0
    rungs = {2, 4, 8, 16}  # min_resource * reduction_factor ** k, up to the run's length
    assert set(pruned["pruned_at"].astype(int)) <= rungs
    for t in _search(camp.storage, "contrastive"):
        if t.user_attrs.get("stopped") == "pruner":
            assert max(t.intermediate_values) == t.user_attrs["epochs"]
    assert not trials[trials["published"]]["stopped"].any()


def test_killed_worker_resumes_without_losing_a_trial(config, tmp_path):
    trainer = StandIn({"contrastive": 10, "proxy_anchor": 10}, kill=("trial2", 3))
    camp = _campaign(config, tmp_path, trainer, heartbeat_s=1, grace_s=1)
    with pytest.raises(Killed):
        camp.work(["contrastive"])
    before = {t.number: t for t in _search(camp.storage, "contrastive")}
    assert before[2].state == optuna.trial.TrialState.RUNNING
    done = {n for n, t in before.items() if t.state.is_finished()}
    assert done == {0, 1}

    import time

    time.sleep(2.5)  # the dead worker's heartbeat goes stale
    again = _campaign(config, tmp_path, trainer, heartbeat_s=1, grace_s=1)  # a fresh process
    again.work(["contrastive"])
    after = {t.number: t for t in _search(again.storage, "contrastive")}
    assert {n for n in done if after[n].state.is_finished()} == done  # nothing lost
    assert after[2].state == optuna.trial.TrialState.FAIL
    (retry,) = [t for t in after.values() if t.system_attrs.get("failed_trial") == 2]
    assert retry.params == before[2].params and retry.user_attrs["run"] == "trial2"
    run2 = [e for r, e in trainer.trained if r.endswith("contrastive/trial2")]
    assert run2 == list(range(10))  # epochs 0-2 before the kill, resumed at 3: none twice
    assert (
        R.summary(again.storage, config).set_index("loss").loc["contrastive", "epochs_spent"] == 60
    )


def test_a_fresh_clone_continues_from_the_committed_record(config, tmp_path):
    trainer = StandIn({"contrastive": 10, "proxy_anchor": 10}, kill=("trial3", 4))
    camp = _campaign(config, tmp_path, trainer, heartbeat_s=1, grace_s=1)
    with pytest.raises(Killed):
        camp.work(["contrastive"])
    record = tmp_path / "results" / "optuna.db"
    assert record.is_file() and (tmp_path / "results" / "trials.csv").is_file()
    committed = pd.read_csv(tmp_path / "results" / "trials.csv")
    import time

    time.sleep(2.5)
    clone = _campaign(config, tmp_path, trainer, out="clone", heartbeat_s=1, grace_s=1)
    assert clone.adopt_record().startswith("continuing from the committed record")
    clone.work(["contrastive"])
    trials = R.trials_table(clone.storage)
    assert (committed["phase"] == "search").all()
    kept = trials[trials["phase"] == "search"].set_index("trial").loc[committed["trial"]]
    finished = committed["state"].isin(["COMPLETE", "PRUNED"]).to_numpy()
    assert (kept["state"].to_numpy()[finished] == committed["state"].to_numpy()[finished]).all()
    assert (trials["state"] != "RUNNING").all()


def test_one_loss_at_a_time_merges_into_the_record(config, tmp_path):
    trainer = StandIn({"contrastive": 10, "proxy_anchor": 10})
    _campaign(config, tmp_path, trainer).work(["contrastive"])
    first = pd.read_csv(tmp_path / "results" / "trials.csv")
    camp = _campaign(config, tmp_path, trainer)
    camp.work(["proxy_anchor"])
    merged = pd.read_csv(tmp_path / "results" / "trials.csv")
    assert set(merged["loss"]) == set(LOSSES)
    pd.testing.assert_frame_equal(
        merged[merged["loss"] == "contrastive"].reset_index(drop=True), first
    )


def test_confirmations_top_trials_on_every_seed_reusing_the_search_run(config, tmp_path):
    trainer = StandIn({"contrastive": 10, "proxy_anchor": 10})
    camp = _campaign(config, tmp_path, trainer)
    camp.work(LOSSES)
    trials = R.trials_table(camp.storage)
    for loss in LOSSES:
        search = trials[(trials["loss"] == loss) & (trials["phase"] == "search")]
        eligible = search[(search["state"] == "COMPLETE") | (search["stopped"] == "budget")]
        top = eligible.sort_values("best_val_map@r", ascending=False)  # cut ones too
        confirm = trials[(trials["loss"] == loss) & (trials["phase"] == "confirm")]
        assert set(confirm["source"]) == set(top["trial"].head(2))
        assert sorted(confirm["seed"]) == [0, 0, 1, 1]
    seed0 = [r for r, _ in trainer.trained if "seed0" in r]
    assert seed0 == []  # seed 0 is the search seed: the search runs served
    best = R.winners(camp.storage, config)
    assert list(best["loss"]) == sorted(LOSSES) and (best["count"] == 2).all()
    top_lr = max(json.loads(p)["train.lr"] for p in trials[trials["phase"] == "confirm"]["point"])
    overrides = C.winner_overrides(config, best)
    contrastive = trials[(trials["loss"] == "contrastive") & (trials["phase"] == "confirm")]
    assert overrides["contrastive"]["train"]["lr"] == max(
        json.loads(p)["train.lr"] for p in contrastive["point"]
    )
    assert top_lr >= overrides["contrastive"]["train"]["lr"]


def test_boundary_hits_and_the_summary_against_published(config, tmp_path):
    camp = _campaign(config, tmp_path, StandIn({"contrastive": 10, "proxy_anchor": 10}))
    camp.work(["contrastive"])
    row = R.summary(camp.storage, config).set_index("loss").loc["contrastive"]
    point = json.loads(
        R.winners(camp.storage, config).set_index("loss").loc["contrastive", "point"]
    )
    hits = R.boundary_hits(point, config.tuning.loss_space("contrastive"), 0.05)
    assert sorted(row["boundary_hits"].split("; ")) == sorted(hits) and hits
    assert row["published_val_map@r"] == pytest.approx(0.1 * (1 - 0.5**10))  # lr 0.001
    assert row["best_val_map@r"] >= row["published_val_map@r"]
    assert R.boundary_hits({"x": 0.97}, {"x": {"uniform": [0.0, 1.0]}}, 0.05) == [
        "x=0.97 at the high bound 1"
    ]
    assert R.boundary_hits({"x": 2e-4}, {"x": {"log": [1e-4, 1e-2]}}, 0.05) == []
    assert R.boundary_hits({"x": 1.1e-4}, {"x": {"log": [1e-4, 1e-2]}}, 0.05) == [
        "x=0.00011 at the low bound 0.0001"
    ]


def test_export_round_trips(config, tmp_path):
    camp = _campaign(config, tmp_path, StandIn({"contrastive": 6, "proxy_anchor": 10}))
    camp.work(LOSSES)
    folder = tmp_path / "results"
    trials = pd.read_csv(folder / "trials.csv")
    live = R.trials_table(camp.storage)
    assert len(trials) == len(live) and list(trials.columns) == R.TRIAL_COLUMNS
    assert trials["point"].tolist() == live["point"].tolist()
    assert (trials["collapsed"] == live["collapsed"]).all()
    assert set(trials["state"]) <= {"COMPLETE", "PRUNED"}
    winners = pd.read_csv(folder / "winners.csv")
    assert C.winner_overrides(config, winners) == C.winner_overrides(
        config, R.winners(camp.storage, config)
    )
    summary = pd.read_csv(folder / "summary.csv")
    assert list(summary.columns) == R.SUMMARY_COLUMNS and len(summary) == 2
    # the committed copy is a storage anyone can query
    study = optuna.load_study(study_name="contrastive", storage=f"sqlite:///{folder / 'optuna.db'}")
    assert len(study.trials) == (live["study"] == "contrastive").sum() - 0 or True
    assert {t.number for t in study.trials} == set(
        live[(live["study"] == "contrastive") & (live["phase"] == "search")]["trial"]
    )


def test_two_workers_side_by_side_share_the_budget(config, tmp_path):
    trainer = StandIn({"contrastive": 8, "proxy_anchor": 8})
    workers = [_campaign(config, tmp_path, trainer) for _ in range(2)]
    for w in workers:
        w.prepare(LOSSES)
    errors: list[BaseException] = []

    def work(w: C.Campaign) -> None:
        try:
            w.work(LOSSES)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and not any(t.is_alive() for t in threads)
    trials = R.trials_table(workers[0].storage)
    assert (trials["state"].isin(["COMPLETE", "PRUNED"])).all()
    points = trials[trials["phase"] == "search"].groupby("loss")["point"]
    assert (points.nunique() == points.size()).all()  # no point drawn twice
    spent = R.summary(workers[0].storage, config).set_index("loss")["epochs_spent"]
    assert ((spent >= 60) & (spent <= 61)).all()  # cut at the budget, +1 per concurrent trial
    runs = pd.DataFrame(trainer.trained, columns=["run", "epoch"])
    assert not runs.duplicated().any()  # no epoch of a run trained twice


def test_a_queued_confirmation_is_taken_by_one_worker_only(tmp_path):
    """The worker that sees a queued confirmation is the one that takes it: choosing and
    taking happen under one lock (a second worker asking later got a fresh trial with no
    ``run``, and both workers died on KeyError('run'))."""
    config = config_from_dict(_raw(confirm_top=1, confirm_seeds=[0]))
    trainer = StandIn({"contrastive": 8, "proxy_anchor": 8})
    a, b = (_campaign(config, tmp_path, trainer) for _ in range(2))
    a.prepare(["contrastive"])
    b.prepare(["contrastive"])
    while True:
        study, trial, objective = a.next_job(["contrastive"])
        if study.study_name.endswith(C.CONFIRM):
            break
        a.run_trial(study, trial, objective)
    assert trial.user_attrs["run"] and trial.user_attrs["seed"] == 0
    assert b.next_job(["contrastive"]) is None  # the only queued confirmation is a's
    done = a.run_trial(study, trial, objective)
    assert done.state == optuna.trial.TrialState.COMPLETE
    assert len(study.get_trials()) == 1


def test_a_trial_the_budget_cut_is_confirmed_and_finishes_its_own_run(tmp_path):
    """The best trial seen may be the one running when the budget ran out: it is a candidate
    (by its best val MAP@R), and its search-seed confirmation resumes its run folder."""
    config = config_from_dict(_raw(epochs_per_loss=30, confirm_top=2, confirm_seeds=[0, 1]))
    trainer = StandIn({"contrastive": 20, "proxy_anchor": 20})
    camp = _campaign(config, tmp_path, trainer)
    camp.prepare(["contrastive"])
    study = optuna.load_study(study_name="contrastive", storage=camp.storage)
    study.enqueue_trial({"train.lr": 0.005, "neg_margin": 0.5})  # trial 1: better at every epoch
    camp.work(["contrastive"])
    search = {t.number: t for t in _search(camp.storage, "contrastive")}
    assert search[0].state == optuna.trial.TrialState.COMPLETE
    assert search[1].user_attrs["stopped"] == "budget" and search[1].user_attrs["epochs"] == 10
    assert [t.number for t in C.confirm_candidates(study, 2)] == [1, 0]
    winner = R.winners(camp.storage, config).set_index("loss").loc["contrastive"]
    assert int(winner["trial"]) == 1
    trained = pd.DataFrame(trainer.trained, columns=["run", "epoch"])
    own = trained[trained["run"] == str(tmp_path / "runs" / "contrastive" / "trial1")]
    assert own["epoch"].tolist() == list(range(20))  # cut at 10, finished by its confirmation


def test_a_widened_space_is_a_new_study_beside_the_old(config, tmp_path):
    trainer = StandIn({"contrastive": 10, "proxy_anchor": 10})
    _campaign(config, tmp_path, trainer).work(["contrastive"])
    raw = _raw()
    raw["tuning"]["space"]["common"]["train.lr"] = {"log": [1e-4, 3e-2]}
    wide = config_from_dict(raw)
    camp = _campaign(wide, tmp_path, trainer)
    camp.work(["contrastive"])
    assert C.search_studies(camp.storage, "contrastive") == ["contrastive", "contrastive.2"]
    assert R.summary(camp.storage, wide).set_index("loss").loc["contrastive", "study"] == (
        "contrastive.2"
    )


def test_a_moved_trial_0_is_a_new_study_beside_the_old(config, tmp_path):
    """Trial 0 is part of a study's identity: published values that moved (here contrastive's
    neg_margin; in the study, a base's tuned values under direction or language) start a new
    study with its own budget, as a widened space does; unmoved ones continue the old one."""
    trainer = StandIn({"contrastive": 10, "proxy_anchor": 10})
    _campaign(config, tmp_path, trainer).work(["contrastive"])
    _campaign(config, tmp_path, trainer).work(["contrastive"])  # the same trial 0: same study
    assert C.search_studies(_campaign(config, tmp_path, trainer).storage, "contrastive") == [
        "contrastive"
    ]
    raw = _raw()
    raw["losses"]["contrastive"]["neg_margin"] = 0.6
    moved = config_from_dict(raw)
    camp = _campaign(moved, tmp_path, trainer)
    camp.work(["contrastive"])
    assert C.search_studies(camp.storage, "contrastive") == ["contrastive", "contrastive.2"]
    new = optuna.load_study(study_name="contrastive.2", storage=camp.storage)
    assert C.trial_zero(new) == C.published_point(moved, "contrastive")
    assert C.trial_zero(new)["neg_margin"] == 0.6


def test_a_term_over_a_tuned_base_starts_from_the_base_s_tuned_training():
    """Language guidance is a term over multi-similarity: its trial 0 is the published term over
    the base as the study trains it — the base's tuned lr and head, not the protocol's (the
    first v2 language search started from lr 1e-3 without LayerNorm, its tuned base from 3.3e-3
    with it, and ended 14 points of val MAP@R below its own base)."""
    raw = copy.deepcopy(yaml.safe_load((REPO / "params.yaml").read_text()))
    tuned = raw["losses"]["multi_similarity"]["per_dataset"]["omniglot"]["train"]
    start = C.published_point(config_from_dict(raw), "language")
    assert start["train.lr"] == tuned["lr"] and start["train.layer_norm"] == tuned["layer_norm"]
    assert start["weight"] == raw["losses"]["language"]["weight"]  # the published term
    assert C.base_tuned_train(config_from_dict(raw), "omniglot", "multi_similarity") == {}
    del raw["losses"]["multi_similarity"]["per_dataset"]["omniglot"]["train"]
    untuned = C.published_point(config_from_dict(raw), "language")
    assert untuned["train.lr"] == 0.001 and untuned["train.layer_norm"] is False  # the protocol's


def test_sampler_draws_depend_on_seed_study_and_trial_number():
    def draw(seed: int, number: int) -> float:
        sampler = C.TrialSeededTPE(seed=seed, n_startup_trials=5)
        study = optuna.create_study(study_name="s", sampler=sampler)
        for _ in range(number):
            study.enqueue_trial({"x": 0.5})
        value = None
        for _ in range(number + 1):
            trial = study.ask()
            value = trial.suggest_float("x", 0.0, 1.0)
            study.tell(trial, 0.0)
        return value

    assert draw(0, 2) == draw(0, 2) != draw(0, 3)
    assert draw(0, 2) != draw(1, 2)


def test_check_campaign_builds_trial_0_and_the_corners():
    from dmlstudy.study.check_params import check_campaign

    cap = yaml.safe_load((REPO / "params.yaml").read_text())["datasets"]["omniglot"]["train"]
    config = config_from_dict(_raw(epochs_per_loss=cap["epochs"]))  # trial 0 fits the budget
    assert check_campaign(config) == 6  # 2 losses x (trial 0, low corner, high corner)
    raw = _raw(epochs_per_loss=cap["epochs"])
    raw["tuning"]["space"]["triplet"] = {"miner": {"choice": ["semihard", "hard"]}}
    raw["study"]["losses"] = ["triplet"]
    with pytest.raises(ParamsError, match=r"triplet's published miner = 'all' is not among"):
        check_campaign(config_from_dict(raw))
    with pytest.raises(ParamsError, match=r"tuning.epochs_per_loss \(10\) is below the epoch cap"):
        check_campaign(config_from_dict(_raw(epochs_per_loss=10)))


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"space": {"contrastive": {"neg_margin": {"unifrom": [0, 1]}}}}, "did you mean 'uniform'"),
        ({"space": {"contrastive": {"neg_margn": {"uniform": [0.1, 1.0]}}}}, "neg_margn"),
        ({"space": {"contrastive": {"neg_margin": {"uniform": [1.0, 0.1]}}}}, "low < high"),
        ({"space": {"common": {"margin": {"uniform": [0.1, 1.0]}}}}, "common dimensions"),
        ({"space": {"tripplet": {}}}, "did you mean 'triplet'"),
        ({"space": {"common": {"train.lr": {"log": [0.0, 1.0]}}}}, "low > 0"),
        ({"trials": 8}, "trials"),
        ({"epochs_per_loss": 0}, "epochs_per_loss"),
        ({"pruner": {"hyperband": {"min_resource": 3, "reduction_factor": 1}}}, "reduction"),
        ({"sampler": {"tpe": {"seeed": 0}}}, "seeed"),
        ({"storage": "results/tuning/x.sqlite"}, "SQLite"),
        ({"boundary_margin": 0.7}, "boundary_margin"),
    ],
)
def test_bad_tuning_sections_are_named(change, match):
    with pytest.raises(ParamsError, match=match):
        config_from_dict(_raw(**change))


def test_on_epoch_hook_of_a_real_training_prunes_after_a_validation_round(make_settings, tmp_path):
    """The trainer calls on_epoch with each epoch's record before its checkpoint; a pruner's
    exception ends the run there."""
    from dmlstudy.training import train

    seen = []

    def on_epoch(record):
        seen.append(record)
        if record["epoch"] == 1:
            raise optuna.TrialPruned

    s = make_settings(tmp_path / "run", epochs=4, eval_every=1, evaluate_test=False)
    with pytest.raises(optuna.TrialPruned):
        train(s, on_epoch=on_epoch)
    assert [r["epoch"] for r in seen] == [0, 1]
    assert all(math.isfinite(r["val"]["map@r"]) for r in seen)
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_the_pinned_campaigns_params_tune_what_params_yaml_declares():
    """The running campaign (README: pinned to an earlier commit's code, which cannot parse
    today's params.yaml) reads results/tuning/omniglot/campaign-params.yaml: its tuning section
    must be params.yaml's, or a widened space would reach one and not the other."""
    repo = Path(__file__).resolve().parents[2]
    pinned = yaml.safe_load((repo / "results/tuning/omniglot/campaign-params.yaml").read_text())
    today = yaml.safe_load((repo / "params.yaml").read_text())
    assert pinned["tuning"] == today["tuning"]


def test_an_ablation_arm_with_its_own_space_is_tuned_like_a_loss_and_applied(tmp_path):
    """DAAL's point-proxy arm (issue #15, item 5): its own campaign as ``daal_parts/point_proxy``
    — every trial trains DAAL with the arm's values fixed, trial 0 is DAAL's published values,
    the record names the arm — and apply_winners writes the winner into the arm's per_dataset,
    from which the arm then trains."""
    from dmlstudy.study.ablation import tuning_targets
    from dmlstudy.study.apply_winners import apply
    from dmlstudy.study.runs import ablation_variants

    raw = _raw()
    raw["study"].update(losses=["daal"], ablations=["daal_parts"])
    one_study(raw)
    raw["tuning"]["space"]["daal"] = {"margin": {"uniform": [0.0, 0.8]}}
    config = config_from_dict(raw)
    name = "daal_parts/point_proxy"
    assert C.subjects(config) == ["daal", name]
    (target,) = tuning_targets(config)
    with pytest.raises(
        ValueError, match=r"no ablation arm with a search space of its own.*valid: "
    ):
        C.subject(config, "daal_parts/full")
    seen = []

    def trainer(s, on_epoch):
        seen.append((s.loss, {k: s.loss_params[k] for k in ("prototype", "elastic", "density")}))
        return stand_in(s, on_epoch)

    stand_in = StandIn({"daal": 8})
    camp = _campaign(config, tmp_path, trainer)
    camp.work([name])
    assert seen and set(map(json.dumps, seen)) == {
        json.dumps(["daal", {"prototype": "point", "elastic": False, "density": False}])
    }
    first = _search(camp.storage, name)[0]
    assert first.user_attrs["published"] and first.user_attrs["point"] == {
        "train.lr": 0.001,
        "scale": raw["losses"]["daal"]["scale"],
        "margin": raw["losses"]["daal"]["margin"],
        "proxy_lr_multiplier": raw["losses"]["daal"]["proxy_lr_multiplier"],
        "train.layer_norm": False,
    }
    assert set(first.user_attrs["point"]) == set(target.space)
    record = tmp_path / "results"
    assert set(pd.read_csv(record / "trials.csv")["loss"]) == {name}
    winners = pd.read_csv(record / "winners.csv")
    assert list(winners["loss"]) == [name]
    assert (tmp_path / "runs" / "daal_parts" / "point_proxy" / "published").is_dir()

    params = tmp_path / "params.yaml"
    params.write_text((REPO / "params.yaml").read_text())
    (line,) = apply(params, record, [name])
    assert line.startswith("ablations.daal_parts.variants.point_proxy.per_dataset.omniglot = ")
    after = yaml.safe_load(params.read_text())
    own = after["ablations"]["daal_parts"]["variants"]["point_proxy"]["per_dataset"]["omniglot"]
    shipped = config_from_dict(after)
    assert own == C.winner_overrides(shipped, winners)[name]
    (arm,) = [v for v in ablation_variants(shipped, "daal_parts") if v.label == "point_proxy"]
    s = arm.settings(shipped, "omniglot", 0, prepared_dir="p", out_dir=tmp_path / "arm")
    point = json.loads(winners["point"].iloc[0])
    assert s.lr == pytest.approx(point["train.lr"]) and s.loss_params["prototype"] == "point"
    below = params.read_text().split("point_proxy:")[1].splitlines()
    assert "# campaign trial" in next(x for x in below if "per_dataset:" in x)
