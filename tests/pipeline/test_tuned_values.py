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
from dmlstudy.pipeline.campaign import winner_overrides

REPO = Path(__file__).resolve().parents[2]
RECORD = "v1"  # the campaign the per_dataset values came from
V1_TRIALS, V1_CONFIRMATIONS = 8, 2 * 2  # v1: 8 search trials, top 2 on seeds 0 and 1


@pytest.fixture(scope="module")
def config():
    return load_config(REPO / "params.yaml")


@pytest.fixture(scope="module")
def results(config):
    folder = REPO / "results" / "tuning" / config.tuning.dataset / RECORD
    return pd.read_csv(folder / "trials.csv"), pd.read_csv(folder / "winners.csv")


def test_equal_effort_for_every_loss(config, results):
    trials, _ = results
    search = trials[trials["phase"] == "search"].groupby("loss").size()
    confirm = trials[trials["phase"] == "confirm"].groupby("loss").size()
    assert set(search.index) == set(config.study.losses)
    assert (search == V1_TRIALS).all(), search
    assert (confirm == V1_CONFIRMATIONS).all()


def test_per_dataset_values_are_the_campaigns_winners(config, results):
    _, winners = results
    dataset = config.tuning.dataset
    expected = winner_overrides(config, winners)
    for loss in config.study.losses:
        section = config.losses[loss].get("per_dataset") or {}
        # base_params (direction, language): the base loss's winner, copied, not a choice of this
        # loss's trials (tests/pipeline/test_ablation_confounds.py keeps the copy equal)
        tuned = {k: v for k, v in section.get(dataset, {}).items() if k != "base_params"}
        assert tuned == expected[loss], loss
