"""The default study's one-seed numbers beside the committed paper-grade study's."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd

from dmlstudy.analysis.beside import beside_paper_grade, git_blob_id
from dmlstudy.training.outputs import load_run
from dmlstudy.training.rundir import run_path

LOSSES = ["a", "b", "c"]


def _default_study(tmp_path: Path, make_run) -> tuple[Path, pd.DataFrame]:
    runs = tmp_path / "work" / "runs"
    for i, loss in enumerate(LOSSES):
        make_run(runs, loss, 0, 0.5 + 0.5 * i)
    rows = {
        loss: {m: 100 * load_run(run_path(runs, loss, 0))["test"][m] for m in ("map@r", "recall@1")}
        for loss in LOSSES
    }
    return runs, pd.DataFrame.from_dict(rows, orient="index").rename_axis("loss")


def _commit_paper(tmp_path: Path, runs: Path, seeds: int) -> Path:
    """A committed paper-grade study: table.csv (percent, verdicts), status.json, seed 0's
    compact folders copied from the default's runs (b's with another lr, c's test moved)."""
    root = tmp_path / "results" / "paper"
    for loss in LOSSES:
        dest = run_path(root / "runs" / "paper" / "omniglot", loss, 0)
        dest.mkdir(parents=True)
        shutil.copy(run_path(runs, loss, 0) / "metrics.json", dest / "metrics.json")
    b = run_path(root / "runs" / "paper" / "omniglot", "b", 0) / "metrics.json"
    m = json.loads(b.read_text())
    m["settings"]["lr"] = 0.5
    b.write_text(json.dumps(m))
    c = run_path(root / "runs" / "paper" / "omniglot", "c", 0) / "metrics.json"
    m = json.loads(c.read_text())
    m["test"]["map@r"] += 0.01
    c.write_text(json.dumps(m))
    table = pd.DataFrame(
        {
            "loss": LOSSES,
            "map@r": [60.0, 55.0, 40.0],
            "map@r_low": [58.0, 53.0, 38.0],
            "map@r_high": [62.0, 57.0, 42.0],
            "map@r_best": [True, False, False],
            "map@r_tied": [True, True, False],
            "recall@1": [80.0, 79.0, 60.0],
            "recall@1_low": [78.0, 77.0, 58.0],
            "recall@1_high": [82.0, 81.0, 62.0],
            "recall@1_best": [True, False, False],
            "recall@1_tied": [True, False, False],
            "seeds": [seeds] * 3,
        }
    )
    (root / "omniglot").mkdir(parents=True)
    table.to_csv(root / "omniglot" / "table.csv", index=False)
    status = {"done": {"main seeds": list(range(seeds))}, "pending": {}}
    (root / "omniglot" / "status.json").write_text(json.dumps(status))
    return root


def test_without_a_committed_paper_grade_study_it_says_so_and_draws_no_verdict(tmp_path, make_run):
    runs, table = _default_study(tmp_path, make_run)
    r = beside_paper_grade(
        table, runs_dir=runs, seed=0, paper_root=tmp_path / "none", dataset="omniglot"
    )
    assert r.source == "" and len(r.sentences) == 1
    assert "is not committed yet" in r.sentences[0] and "no verdict" in r.sentences[0]
    assert list(r.table.columns) == ["map@r, this run (seed 0)", "recall@1, this run (seed 0)"]


def test_beside_the_paper_grade_study_verdicts_and_the_same_seed_run(tmp_path, make_run):
    runs, table = _default_study(tmp_path, make_run)
    root = _commit_paper(tmp_path, runs, seeds=5)
    r = beside_paper_grade(table, runs_dir=runs, seed=0, paper_root=root, dataset="omniglot")
    t = r.table
    assert t["map@r, paper-grade verdict"].tolist() == [
        "best",
        "tied with the best",
        "below the best",
    ]
    assert t["recall@1, paper-grade verdict"].tolist()[1] == "below the best"
    assert t.loc["a", "map@r, paper-grade 95% CI"] == "[58.0, 62.0]"
    assert t["same run as the paper-grade one?"].tolist() == ["yes", "no: lr", "yes"]
    assert t.loc["a", "difference (points)"] == 0
    assert abs(t.loc["c", "difference (points)"] + 1.0) < 1e-9  # the committed run is 1 point up
    blob = git_blob_id(root / "omniglot" / "table.csv")[:12]
    assert r.source.endswith(f"table.csv (git blob {blob})")
    assert r.sentences[0].startswith("Beside the committed paper-grade study (")
    assert "main seeds done: [0, 1, 2, 3, 4]" in r.sentences[0]
    assert "Kendall τ" in r.sentences[1]
    assert r.sentences[2].startswith("2 of 3 losses ran with the paper-grade seed-0 run's")
    assert "at most 1.00 points" in r.sentences[2]


def test_a_paper_grade_table_with_fewer_than_three_seeds_gives_no_verdict(tmp_path, make_run):
    runs, table = _default_study(tmp_path, make_run)
    root = _commit_paper(tmp_path, runs, seeds=2)
    r = beside_paper_grade(table, runs_dir=runs, seed=0, paper_root=root, dataset="omniglot")
    assert set(r.table["map@r, paper-grade verdict"]) == {"none (2 seeds)"}


def test_a_loss_the_paper_grade_study_lacks_is_named(tmp_path, make_run):
    runs, table = _default_study(tmp_path, make_run)
    root = _commit_paper(tmp_path, runs, seeds=5)
    make_run(runs, "d", 0, 0.7)
    table.loc["d"] = [10.0, 20.0]
    r = beside_paper_grade(table, runs_dir=runs, seed=0, paper_root=root, dataset="omniglot")
    assert r.table.loc["d", "map@r, paper-grade verdict"] == "not in the paper-grade study"
    assert r.table.loc["d", "same run as the paper-grade one?"] == "no: not committed"


def test_the_losses_the_quick_study_leaves_out_are_named_with_their_page(tmp_path, make_run):
    runs, table = _default_study(tmp_path, make_run)
    root = _commit_paper(tmp_path, runs, seeds=5)
    r = beside_paper_grade(
        table.drop(index="c"), runs_dir=runs, seed=0, paper_root=root, dataset="omniglot"
    )
    assert list(r.table.index) == ["a", "b"]
    assert r.sentences[-1] == (
        "The paper-grade study also compares 1 loss(es) this quick study leaves out (c); their "
        "numbers and verdicts are on its page (reports/paper/omniglot.html)."
    )
    full = beside_paper_grade(table, runs_dir=runs, seed=0, paper_root=root, dataset="omniglot")
    assert not any("leaves out" in x for x in full.sentences)
