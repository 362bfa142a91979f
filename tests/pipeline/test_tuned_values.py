"""The committed tuning campaign and params.yaml agree: every loss got the same number of
validation-only trials, and its per_dataset values are exactly the campaign's winner.

The values in params.yaml come from campaign v1 (``results/tuning/<dataset>/v1/``: 8 trials of 5
epochs per loss, the best 2 confirmed on 2 seeds); point RECORD at the Optuna campaign's record
(``results/tuning/<dataset>/``) when its winners replace them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from dmlstudy.config import load_config
from dmlstudy.study.campaign import winner_overrides

REPO = Path(__file__).resolve().parents[2]
RECORD = "v1"  # the campaign the per_dataset values came from
V1_TRIALS, V1_CONFIRMATIONS = 8, 2 * 2  # v1: 8 search trials, top 2 on seeds 0 and 1


@pytest.fixture(scope="module")
def config():
    """Every loss a study of params.yaml trains (the quick default's and the paper study's)."""
    return load_config(REPO / "params.yaml").everything()


@pytest.fixture(scope="module")
def results(config):
    folder = REPO / "results" / "tuning" / config.tuning.dataset / RECORD
    return pd.read_csv(folder / "trials.csv"), pd.read_csv(folder / "winners.csv")


def recorded_losses(config, recorded) -> list[str]:
    """The study's losses the record covers; any other must be listed in ``study.untuned``
    (added after that campaign, to be tuned first), else the message says what to do."""
    for loss in config.study.losses:
        assert loss in recorded or loss in config.study.untuned, (
            f"{loss} has no trials in campaign record {RECORD}: run the campaign for it "
            f"(--loss {loss}) and point RECORD at that record, or list it in study.untuned"
        )
    return [loss for loss in config.study.losses if loss in recorded]


def test_equal_effort_for_every_loss(config, results):
    trials, _ = results
    search = trials[trials["phase"] == "search"].groupby("loss").size()
    confirm = trials[trials["phase"] == "confirm"].groupby("loss").size()
    assert set(search.index) == set(recorded_losses(config, set(search.index)))
    assert (search == V1_TRIALS).all(), search
    assert (confirm == V1_CONFIRMATIONS).all()


def test_per_dataset_values_are_the_campaigns_winners(config, results):
    _, winners = results
    dataset = config.tuning.dataset
    expected = winner_overrides(config, winners)
    for loss in recorded_losses(config, set(expected)):
        section = config.losses[loss].get("per_dataset") or {}
        # base_params (direction, language): the base loss's winner, copied, not a choice of this
        # loss's trials (tests/pipeline/test_ablation_confounds.py keeps the copy equal)
        tuned = {k: v for k, v in section.get(dataset, {}).items() if k != "base_params"}
        assert tuned == expected[loss], loss


def test_a_loss_added_after_the_campaign_is_named_not_a_key_error(monkeypatch):
    """A new loss in the study (issue #17): listed in study.untuned it is skipped until it has
    trials; unlisted, the message says what to do (not a bare KeyError)."""
    import yaml

    from dmlstudy.config import config_from_dict
    from dmlstudy.losses import base, get_loss_class

    monkeypatch.setitem(base._REGISTRY, "norm_softmax", get_loss_class("arcface"))
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["losses"]["norm_softmax"] = {"scale": 16.0}
    raw["study"]["losses"] = [*raw["study"]["losses"], "norm_softmax"]
    recorded = set(raw["study"]["losses"]) - {"norm_softmax"}
    with pytest.raises(AssertionError, match="norm_softmax has no trials in campaign record"):
        recorded_losses(config_from_dict(raw), recorded)
    raw["study"]["untuned"] = ["norm_softmax"]
    assert "norm_softmax" not in recorded_losses(config_from_dict(raw), recorded)


def test_ablation_arms_with_their_own_space_carry_the_campaigns_winners(config, results):
    """An arm tuned as ``<ablation>/<arm>`` (DAAL's point proxy) has exactly its winner in its
    ``per_dataset``; an arm the record has not tuned has none (it trains with its loss's values,
    and its page says so: study.ablation.tuning_notes)."""
    from dmlstudy.study.ablation import tuning_targets
    from dmlstudy.study.campaign import ARM
    from dmlstudy.study.runs import ablation_variants

    _, winners = results
    dataset = config.tuning.dataset
    arms = winners[winners["loss"].str.contains(ARM, regex=False)]
    expected = winner_overrides(config, arms)
    for target in tuning_targets(config):
        ablation, label = target.name.split(ARM)
        (arm,) = [v for v in ablation_variants(config, ablation) if v.label == label]
        own = (arm.per_dataset or {}).get(dataset)
        assert own == expected.get(target.name), (target.name, own)
