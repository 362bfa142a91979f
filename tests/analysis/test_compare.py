"""Comparing methods from run folders: intervals, paired tests, ties, sentences."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dmlstudy.analysis.compare import compare, conclusion, per_query
from dmlstudy.evaluation.hierarchical import two_way_test
from dmlstudy.training.rundir import run_path


def _run(root, name, seed, noise, n_classes=60):
    d = run_path(root, name, seed)
    d.mkdir(parents=True)
    rng = np.random.default_rng([seed, 11])
    labels = np.repeat(np.arange(n_classes), 4)
    emb = 3 * np.eye(n_classes)[labels] + noise * rng.normal(size=(len(labels), n_classes))
    np.savez(
        d / "embeddings_test.npz",
        embeddings=emb.astype(np.float32),
        labels=labels,
        coarse_labels=labels // 6,
        is_query=np.ones(len(labels), bool),
        is_gallery=np.ones(len(labels), bool),
        rows=np.arange(len(labels)),
    )
    (d / "metrics.json").write_text(json.dumps({"metric": "cosine"}))
    return d


def test_best_is_reference_worse_is_not_tied_and_equal_is_tied(tmp_path):
    groups = {
        "good": [_run(tmp_path, "good", 0, 1.0)],
        "bad": [_run(tmp_path, "bad", 0, 2.5)],
        "twin": [_run(tmp_path, "twin", 0, 1.0)],
    }
    table = compare(groups).set_index(["method", "metric"])
    for m in ("recall@1", "map@r"):
        assert table.loc[("bad", m), "reference"] in ("good", "twin")
        assert not table.loc[("bad", m), "tied"] and table.loc[("bad", m), "diff_high"] < 0
        assert table.loc[("twin", m), "tied"] and table.loc[("good", m), "tied"]
        lo, mean, hi = table.loc[("bad", m), ["ci_low", "mean", "ci_high"]]
        assert lo < mean < hi
    assert "seed_ci" not in table.columns  # one seed: no seed interval, no NaN column
    assert set(table["test"]) == {"classes"}
    # one seed: the sentence gives the difference and its class interval, never a verdict
    for method in ("bad", "twin"):
        text = conclusion(table.loc[(method, "map@r")].rename(None).to_dict() | {
            "method": method, "metric": "map@r"})  # fmt: skip
        assert text.endswith("fewer than 3 seeds: no verdict)"), text
        assert "significant" not in text and "p =" not in text and "p <" not in text


def test_three_seeds_test_over_seeds_and_give_seed_intervals(tmp_path):
    groups = {
        name: [_run(tmp_path, name, s, noise) for s in range(3)]
        for name, noise in (("a", 1.0), ("b", 1.1))
    }
    table = compare(groups, reference="a")
    assert set(table["test"]) == {"seeds"} and table["seed_ci"].notna().all()
    row = table[(table["method"] == "b") & (table["metric"] == "recall@1")].iloc[0]
    assert row["reference"] == "a" and "paired over seeds" in conclusion(row)


def test_bad_inputs_are_named(tmp_path):
    a = _run(tmp_path, "a", 0, 1.0)
    with pytest.raises(ValueError, match="reference 'z'"):
        compare({"a": [a]}, reference="z")
    with pytest.raises(ValueError, match="same number"):
        compare({"a": [a], "b": []})
    other = _run(tmp_path, "c", 0, 1.0, n_classes=50)
    with pytest.raises(ValueError, match="different queries"):
        compare({"a": [a, other]})


def test_every_tie_lies_closer_than_its_detectable_difference(tmp_path):
    # Holm rejects every p <= alpha/m, so the detectable difference is computed at alpha/m: a
    # tie then always reads true as "closer than mdd" (at alpha it could be farther, issue #16)
    noises = {"a": 1.0, "b": 1.02, "c": 1.05, "d": 1.1, "e": 1.3}
    groups = {n: [_run(tmp_path, n, s, x) for s in range(3)] for n, x in noises.items()}
    table = compare(groups, reference="a")
    rows = table[table["method"] != "a"]
    assert rows["tied"].any() and (~rows["tied"]).any()  # both kinds are checked
    ties = rows[rows["tied"]]
    assert (ties["diff"].abs() < ties["mdd"]).all()
    m = len(noises) - 1
    for _, r in rows.iterrows():
        y = {n: np.stack([per_query(g, "fine")[r["metric"]] for g in groups[n]]) for n in noises}
        labels = per_query(groups["a"][0], "fine")["labels"]
        strict = two_way_test(y[r["method"]], y["a"], labels, alpha=0.05 / m)
        loose = two_way_test(y[r["method"]], y["a"], labels, alpha=0.05)
        assert r["mdd"] == pytest.approx(strict.mdd) and strict.mdd > loose.mdd
