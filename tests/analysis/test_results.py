"""Result tables from run folders (synthetic runs; metrics checked against independent math)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dmlstudy.analysis import results as R
from tests.support.fake_runs import fake_run


def test_collect_summarize_and_percent(tmp_path):
    for seed, r1 in enumerate([0.5, 0.6, 0.7]):
        fake_run(tmp_path, "a", seed, r1)
        fake_run(tmp_path, "b", seed, r1 + 0.2)
    runs = R.collect_runs(tmp_path, ["a", "b"], [0, 1, 2])
    assert len(runs) == 6
    s = R.summarize(runs)
    assert s.index.tolist() == ["b", "a"]  # sorted best first
    # t(0.975, 2) * std([.5,.6,.7], ddof=1) / sqrt(3) = 4.3027 * 0.1 / 1.732
    assert s.loc["a", "recall@1"] == pytest.approx(0.6) and s.loc[
        "a", "recall@1_ci"
    ] == pytest.approx(0.24841, abs=1e-4)
    assert R.percent(runs)["recall@1"].tolist() == pytest.approx([50, 60, 70, 70, 80, 90])
    hist = R.histories(tmp_path, ["a"], [0])
    assert hist["val_map@r"].tolist() == [0.1, 0.2] and set(hist["loss"]) == {"a"}


def test_missing_run_names_the_stage(tmp_path):
    with pytest.raises(FileNotFoundError, match="dvc repro train"):
        R.collect_runs(tmp_path, ["a"], [0])


def test_files_for_readers_count_epochs_from_one(tmp_path):
    """One convention wherever a reader sees an epoch: the written tables say ``selected_epoch``,
    1-based, as every page ("epochs 18/20") and val_curves.csv; runs.csv used to give the
    trainer's 0-based ``best_epoch`` (17 where the page said 18)."""
    import glob

    import pandas as pd

    from dmlstudy.reports.experiment_report import write_experiment

    fake_run(tmp_path, "a", 0, 0.5)
    runs = R.collect_runs(tmp_path, ["a"], [0])
    write_experiment(tmp_path / "x", runs.rename(columns={"loss": "variant"}), runs.iloc[:0], {})
    written = pd.read_csv(tmp_path / "x.csv")
    assert "best_epoch" not in written and written["selected_epoch"].tolist() == [
        runs["best_epoch"].iloc[0] + 1
    ]
    repo = Path(__file__).resolve().parents[2]
    for path in glob.glob(str(repo / "results/**/*.csv"), recursive=True):
        assert "best_epoch" not in pd.read_csv(path, nrows=0).columns, path
    table = pd.read_csv(repo / "results/omniglot/table.csv", index_col="loss")
    committed = pd.read_csv(repo / "results/omniglot/runs.csv", index_col="loss")
    for loss, row in committed.iterrows():
        assert table.loc[loss, "epochs"] == f"{row['selected_epoch']}/{row['epochs_run']}"
