"""The committed paper-grade report: every table it commits is recomputed here from the committed
compact run folders alone (issue #16: no retraining, no embeddings, nothing but git)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dmlstudy.analysis.compact import is_complete
from dmlstudy.analysis.compare import compare
from dmlstudy.analysis.study_table import load_study, write_results
from dmlstudy.config import load_config
from dmlstudy.reports.paper_report import ablation_display, arm_runs, transfer_table, write_report
from dmlstudy.study.paper import RESULTS_ROOT, ablation_seeds, arm_dir
from dmlstudy.study.runs import ablation_variants

REPO = Path(__file__).resolve().parents[2]


def assert_same_frames(committed: Path, recomputed: Path) -> None:
    """Numbers to the committed precision (tables are written rounded to 4 decimals, so a last
    bit of a sum never decides), everything else exactly."""
    a, b = pd.read_csv(committed), pd.read_csv(recomputed)
    assert list(a.columns) == list(b.columns) and a.shape == b.shape, committed.name
    for col in a.columns:
        x, y = a[col], b[col]
        if pd.api.types.is_float_dtype(x) and pd.api.types.is_float_dtype(y):
            assert np.allclose(x, y, rtol=0, atol=2e-4, equal_nan=True), (committed.name, col)
        else:
            assert x.astype(str).tolist() == y.astype(str).tolist(), (committed.name, col)


def check_recomputed(results: Path, dataset: str, tmp_path: Path) -> list[str]:
    """Recompute every table of the report committed in ``results/<dataset>`` from the compact
    folders in ``results/runs`` and compare; returns the compared files (relative names).

    The committed report may predate runs committed since (a study still going: its status
    names them pending): its main table is recomputed over the seeds it names, its finished
    ablations and its transfer table as they were; what finished since only adds."""
    committed = results / dataset
    config = load_config(REPO / "params.yaml")
    paper = config.for_profile("paper")
    status = json.loads((committed / "status.json").read_text())
    now = tmp_path / "now"
    write_report(config, "paper", dataset, results, out=now, transfer="wide64")
    current = json.loads((now / "status.json").read_text())
    for key, value in status["done"].items():  # nothing done is undone
        if key != "main seeds":
            assert current["done"][key] == value, key
    assert set(status["done"]["main seeds"]) <= set(current["done"]["main seeds"])
    seeds = status["done"]["main seeds"]
    main = tmp_path / "main"
    study = load_study(results / "runs" / "paper" / dataset, list(paper.study.losses), seeds)
    write_results(study, main, [])
    names = sorted(str(p.relative_to(committed)) for p in committed.rglob("*.csv"))
    for name in names:
        if name == "transfer.csv":
            other = load_study(
                results / "runs" / "wide64" / dataset, list(paper.study.losses), [0]
            ).table
            transfer_table(study.table, other).round(4).to_csv(tmp_path / name)
            assert_same_frames(committed / name, tmp_path / name)
        elif name.startswith("ablations/"):
            assert_same_frames(committed / name, now / name)
        else:
            assert_same_frames(committed / name, main / name)
    return names


def test_a_changed_number_in_a_committed_table_is_found(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    pd.DataFrame({"loss": ["x", "y"], "map@r": [50.1234, 40.0], "tied": [True, False]}).to_csv(a)
    pd.DataFrame({"loss": ["x", "y"], "map@r": [50.1234, 40.001], "tied": [True, False]}).to_csv(b)
    with pytest.raises(AssertionError):
        assert_same_frames(a, b)
    pd.DataFrame({"loss": ["x", "y"], "map@r": [50.1234, 40.0], "tied": [True, True]}).to_csv(b)
    with pytest.raises(AssertionError):
        assert_same_frames(a, b)


def test_the_committed_paper_report_is_recomputed_from_the_compact_folders(tmp_path):
    results = REPO / RESULTS_ROOT
    dataset = load_config(REPO / "params.yaml").study.datasets[0]
    if not (results / dataset / "status.json").is_file():
        pytest.skip("the paper-grade report is not committed yet (`make paper` writes it last)")
    names = check_recomputed(results, dataset, tmp_path)
    assert "table.csv" in names


def test_an_ablation_page_shows_each_seed_so_a_collapse_reads_as_one_run():
    """Seed 2 of direction gamma = 0.5 collapsed: its table row shows the three seeds' values,
    not only a mean of 30.0 with an interval of ± 54.8 (and its verdict is inconclusive)."""
    config = load_config(REPO / "params.yaml")
    runs = REPO / RESULTS_ROOT / "runs"
    seeds = ablation_seeds(config, "paper")
    arms = [v.label for v in ablation_variants(config.for_profile("paper"), "direction_gamma")]
    groups = {
        a: [arm_dir(runs, "paper", "omniglot", "direction_gamma", s, a) for s in seeds]
        for a in arms
    }
    if not all(is_complete(p) for g in groups.values() for p in g):
        pytest.skip("the direction_gamma ablation is not committed yet")
    per_seed = arm_runs(groups, seeds)
    assert len(per_seed) == len(arms) * len(seeds) and per_seed["converged"].all()
    comparison = compare(groups, reference="gamma=0.0")
    shown = ablation_display(comparison, per_seed)
    values = shown.loc["gamma=0.5", "MAP@R, seeds 0, 1, 2"].split(", ")
    assert values == [f"{v:.1f}" for v in per_seed[per_seed["arm"] == "gamma=0.5"]["map@r"]]
    assert min(map(float, values)) < 10 < max(map(float, values))  # the collapsed seed
    assert shown.loc["gamma=0.5", "MAP@R vs gamma=0.0"].startswith("inconclusive")
