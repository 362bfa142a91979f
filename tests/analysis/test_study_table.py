"""The main table: percent, intervals labelled, ties from the paired tests, convergence flagged,
no empty cell; the committed files (metrics per loss, table.csv) agree with it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dmlstudy.analysis import study_table as S
from dmlstudy.analysis.results import METRICS

NOISE = {"good": 1.0, "twin": 1.0, "bad": 2.6}


@pytest.fixture
def one_seed(tmp_path, make_run):
    for name, noise in NOISE.items():
        make_run(tmp_path, name, 0, noise, converged=name != "bad")
    return S.load_study(tmp_path, list(NOISE), [0])


def test_table_is_percent_best_map_first_and_one_seed_carries_no_verdict(one_seed):
    """One seed: means, class intervals and the best estimate, but no tied/below column (a test
    over the test classes of one training run is not a verdict on the losses: issue #16)."""
    t, cmp = one_seed.table, one_seed.comparison
    assert t.index.tolist()[-1] == "bad" and t["map@r"].is_monotonic_decreasing
    for m in S.HEADLINE:
        c = cmp[cmp["metric"] == m].set_index("method")
        # the table's mean is the runs' metrics.json value; compare's comes from the embeddings
        assert np.allclose(t[m], 100 * c.loc[t.index, "mean"], atol=1e-4)  # 4 decimals kept
        assert (t[f"{m}_low"] < t[m]).all() and (t[m] < t[f"{m}_high"]).all()
        assert t[f"{m}_best"].sum() == 1
        assert not {f"{m}_tied", f"{m}_p_holm", f"{m}_diff", f"{m}_mdd"} & set(t.columns)
    assert t.loc["good", "epochs"] == "5/7" and t.loc["bad", "epochs"] == "5/5"
    assert t["converged"].tolist() == [True, True, False]
    assert not any(c.endswith("_seed_ci") for c in t.columns)  # one seed: no such column
    assert not t.isna().any().any()


def test_display_table_labels_intervals_and_flags_unconverged_runs(one_seed):
    shown = S.display_table(one_seed.table, "omniglot")
    assert "R@1 (95% CI, bootstrap over test classes; one training run)" in shown.columns
    assert not any("Student t" in c for c in shown.columns)
    assert shown.loc["bad", "converged"] == "not converged"
    assert not any("vs best" in c for c in shown.columns)  # < 3 seeds: no tied/below verdict
    assert "published R@1 (protocol)" not in shown.columns
    text = shown.to_html()
    assert "nan" not in text.lower()
    cub = S.display_table(one_seed.table, "cub200")  # no published number for these: a dash
    assert set(cub["published R@1 (protocol)"]) == {"—"}


def test_five_seeds_give_verdicts_with_effect_sizes_and_detectable_differences(tmp_path, make_run):
    noises = {"good": 1.0, "twin": 1.0, "bad": 2.6}
    for name, noise in noises.items():
        for seed in range(5):  # twin: as good on average, with its own seed-to-seed spread
            make_run(tmp_path, name, seed, noise + (0.03 * (seed - 2) if name == "twin" else 0))
    study = S.load_study(tmp_path, list(noises), list(range(5)))
    t = study.table
    assert (t.loc[t["map@r_best"] == False, "map@r_mdd"] > 0).all()  # noqa: E712
    for m in S.HEADLINE:  # the verdict columns are the paired tests' over seeds and classes
        c = study.comparison[study.comparison["metric"] == m].set_index("method")
        assert (c["test"] == "seeds").all()
        assert t[f"{m}_tied"].tolist() == c.loc[t.index, "tied"].tolist()
        assert not t.loc["bad", f"{m}_tied"]
    shown = S.display_table(t, "omniglot")
    assert "MAP@R (95% CI, bootstrap over test classes)" in shown.columns
    vs = shown["MAP@R vs best"]
    assert vs.loc["bad"].startswith("below: -") and "[" in vs.loc["bad"]
    twin = [v for v in vs if v != "best" and not v.startswith("below")]
    assert len(twin) == 1 and twin[0].startswith("tied (closer than ")
    assert " points at 5 seeds): " in twin[0]
    assert not t.isna().any().any()


def test_seed_intervals_appear_with_two_seeds(tmp_path, make_run):
    for name, noise in (("a", 1.0), ("b", 1.4)):
        for seed in (0, 1):
            make_run(tmp_path, name, seed, noise, converged=(name, seed) != ("b", 1))
    study = S.load_study(tmp_path, ["a", "b"], [0, 1])
    shown = S.display_table(study.table, "omniglot")
    assert "MAP@R (± 95% CI, Student t over seeds)" in shown.columns
    assert shown.loc["b", "converged"] == "not converged (1 of 2 seeds)"
    assert study.table.loc["a", "epochs"] == "5/7, 5/7"
    assert not study.table.isna().any().any()


def test_written_files_are_percent_and_agree_with_the_table(one_seed, tmp_path):
    out = tmp_path / "results"
    (out / "metrics").mkdir(parents=True)
    (out / "metrics" / "gone.json").write_text("{}")  # a loss no longer in the study
    S.write_results(one_seed, out, ["sentence one"])
    files = sorted(p.stem for p in (out / "metrics").glob("*.json"))
    assert files == sorted(NOISE)
    good = json.loads((out / "metrics" / "good.json").read_text())
    assert list(good) == list(METRICS)
    assert good["map@r"] == pytest.approx(one_seed.table.loc["good", "map@r"], abs=0.005)
    back = S.read_table(out / "table.csv")
    assert np.allclose(back["recall@1"], one_seed.table["recall@1"], atol=1e-3)
    assert back["map@r_best"].dtype == bool and "map@r_tied" not in back.columns
    assert json.loads((out / "findings.json").read_text()) == {"sentences": ["sentence one"]}
    curves = pd.read_csv(out / "val_curves.csv")
    assert curves["epoch"].min() == 1 and curves["val_map@r"].max() == pytest.approx(25.0)
    runs = pd.read_csv(out / "runs.csv")
    assert runs["recall@1"].max() > 1  # percent


def test_read_table_names_the_stage_and_rejects_empty_cells(tmp_path):
    with pytest.raises(FileNotFoundError, match="dvc repro evaluate"):
        S.read_table(tmp_path / "table.csv")
    pd.DataFrame({"loss": ["a"], "map@r": [float("nan")]}).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(ValueError, match="empty cells in \\['map@r'\\]"):
        S.read_table(tmp_path / "t.csv")


def test_headline_and_comparison_frames(one_seed):
    h = S.headline_frame(one_seed.table, "map@r")
    assert h["method"].tolist() == one_seed.table.index.tolist()
    assert h["best"].sum() == 1 and not h.loc[2, "converged"]
    assert not h["verdict"].any() and not h["tied"].any()  # one seed: no tied/below marker
    c = S.comparison_frame(S.percent_comparison(one_seed.comparison), "recall@1")
    assert (c["mean"] > 1).all() and c["best"].sum() == 1 and not c["verdict"].any()
