"""Ablation and multi-modal pages: the question, the per-arm table, the files the index reads."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pandas as pd
import yaml

from dmlstudy.analysis.compare import compare
from dmlstudy.config import config_from_dict
from dmlstudy.reports import experiment_report as X
from dmlstudy.training.rundir import run_path

REPO = Path(__file__).resolve().parents[2]


def test_questions_come_from_params():
    config = config_from_dict(copy.deepcopy(yaml.safe_load((REPO / "params.yaml").read_text())))
    assert X.ablation_question(config, "m_per_class").startswith(
        "Does m_per_class matter for multi_similarity? Arms m_per_class=2, m_per_class=4, "
    )
    parts = X.ablation_question(config, "daal_parts")
    assert (
        parts.startswith("What does each part of daal contribute?")
        and "reference arm full" in parts
    )


def test_arm_table_and_written_files(tmp_path, make_run):
    arms = {"m=4": 1.0, "m=2": 1.0, "m=8": 2.6}
    for arm, noise in arms.items():
        make_run(tmp_path, arm, 0, noise, converged=arm != "m=8")
    cmp = compare({a: [run_path(tmp_path, a, 0)] for a in arms}, reference="m=4")
    runs = pd.DataFrame(
        {
            "variant": list(arms),
            "value": [4, 2, 8],
            "seed": 0,
            "recall@1": [0.5, 0.5, 0.3],
            "map@r": [0.2, 0.2, 0.1],
            "best_epoch": 4,
            "epochs_run": [7, 7, 5],
            "converged": [True, True, False],
        }
    )
    table = X.arm_table(cmp, runs, "variant", metrics=("recall@1", "map@r"))
    assert table.index.tolist() == ["m=4", "m=2", "m=8"]
    assert table.loc["m=4", "MAP@R vs m=4"] == "reference"
    # one seed per arm: the difference and its class interval, no verdict (issue #16)
    assert table.loc["m=2", "MAP@R vs m=4"].endswith("; fewer than 3 seeds: no verdict)")
    assert (
        table.loc["m=8", "converged"] == "not converged"
        and table.loc["m=8", "epochs (best/run)"] == "5/5"
    )
    assert not table.isna().any().any()
    assert X.not_converged(runs, "variant") == ["m=8"]
    X.write_experiment(tmp_path / "out" / "m_per_class", runs, cmp, {"summary": "s"})
    written = pd.read_csv(tmp_path / "out" / "m_per_class.csv")
    assert written["map@r"].tolist() == [20.0, 20.0, 10.0] and written["value"].tolist() == [
        4,
        2,
        8,
    ]
    back = pd.read_csv(tmp_path / "out" / "m_per_class-comparison.csv")
    assert (back["mean"] > 1).all() and back["tied"].dtype == bool
    assert json.loads((tmp_path / "out" / "m_per_class.json").read_text()) == {"summary": "s"}
