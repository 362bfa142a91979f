"""The campaign's winners written into params.yaml (study/apply_winners.py): the values
winner_overrides gives, the comment naming the trial, and the regularizers over their tuned
base."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from dmlstudy.config import load_config
from dmlstudy.study.apply_winners import apply, main

REPO = Path(__file__).resolve().parents[2]


def _record(folder: Path, rows: list[dict]) -> Path:
    folder.mkdir()
    for r in rows:
        r["point"] = json.dumps(r["point"])
    pd.DataFrame(rows, columns=["loss", "trial", "point", "mean", "std", "count"]).to_csv(
        folder / "winners.csv", index=False
    )
    return folder


@pytest.fixture
def params(tmp_path) -> Path:
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    return tmp_path / "params.yaml"


def test_winners_are_written_and_the_regularizers_follow_their_base(params, tmp_path):
    before = load_config(params)
    record = _record(
        tmp_path / "record",
        [
            {
                "loss": "triplet",
                "trial": 7,
                "point": {"margin": 0.2, "miner": "hard", "train.lr": 0.004},
                "mean": 0.5241,
                "std": 0.0063,
                "count": 3,
            },
            {
                "loss": "language",
                "trial": 3,
                "point": {"weight": 2.0, "train.lr": 0.002},
                "mean": 0.5,
                "std": 0.01,
                "count": 3,
            },
        ],
    )
    done = apply(params, record)
    text = params.read_text()
    config = load_config(params)
    tuned = {n: s.get("per_dataset", {}).get("omniglot") for n, s in config.losses.items()}
    assert tuned["triplet"] == {"margin": 0.2, "miner": "hard", "train": {"lr": 0.004}}
    assert "per_dataset:                  # campaign trial 7, val MAP@R 52.4 ± 0.6 (3 seeds)" in (
        text
    )
    # direction: its base's new values, its own (older) ones kept, and a note to tune it again
    old = before.losses["direction"]["per_dataset"]["omniglot"]
    assert tuned["direction"] == {**old, "base_params": {"margin": 0.2, "miner": "hard"}}
    assert config.tuning.loss_params["direction"] == {
        "base_params": {"margin": 0.2, "miner": "hard"}
    }
    assert any("run the campaign for it (--loss direction)" in line for line in done)
    # language: its own winner over its base's tuned values (multi-similarity's, unchanged)
    ms = {k: v for k, v in tuned["multi_similarity"].items() if k != "train"}
    assert tuned["language"] == {"weight": 2.0, "train": {"lr": 0.002}, "base_params": ms}
    assert config.tuning.loss_params["language"] == {"base_params": ms}
    assert not any("--loss language" in line for line in done)
    # nothing else changed
    for name in set(tuned) - {"triplet", "direction", "language"}:
        assert tuned[name] == before.losses[name].get("per_dataset", {}).get("omniglot"), name
    assert "# dmlstudy parameters." in text  # the comments stay


def test_a_loss_without_a_confirmed_winner_is_refused_before_any_edit(params, tmp_path, capsys):
    record = _record(tmp_path / "record", [])
    text = params.read_text()
    assert main([str(params), "--record", str(record), "--loss", "arcface"]) == 1
    assert "has no confirmed winner of arcface" in capsys.readouterr().err
    assert params.read_text() == text
