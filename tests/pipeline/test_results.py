"""Result tables from run folders (synthetic runs; metrics checked against independent math)."""

from __future__ import annotations

import pytest

from dmlstudy.pipeline import results as R
from tests.pipeline.fake_runs import fake_run


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
