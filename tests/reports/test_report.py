"""The index page: led by the question, a headline figure and computed takeaways; published
numbers with their protocol (or the note that none exist); a section per page; offline, relative
links only, no empty cell, no path of this machine."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
import yaml

from dmlstudy.analysis import study_table as S
from dmlstudy.analysis.compare import compare
from dmlstudy.analysis.findings import ablation_summary, multimodal_summary
from dmlstudy.config import config_from_dict
from dmlstudy.reports import report
from dmlstudy.reports.experiment_report import write_experiment
from dmlstudy.training.rundir import run_path

REPO = Path(__file__).resolve().parents[2]
LOSSES = {"contrastive": 1.0, "triplet": 1.0, "rsw": 2.6}
PNG = "data:image/png;base64,iVBORw0KGgo="


@pytest.fixture
def study(tmp_path, make_run):
    """results/ and reports/ of a small study: the evaluation, one ablation, the multi-modal
    experiment, written by the package's own writers."""
    raw = copy.deepcopy(yaml.safe_load((REPO / "params.yaml").read_text()))
    raw["study"].update(losses=list(LOSSES), ablations=["m_per_class"], multimodal=["omniglot"])
    config = config_from_dict(raw)
    runs, results, reports = tmp_path / "runs", tmp_path / "results", tmp_path / "reports"
    for loss, noise in LOSSES.items():
        make_run(runs, loss, 0, noise, converged=loss != "rsw")
    st = S.load_study(runs, list(LOSSES), [0])
    S.write_results(st, results / "omniglot", S.study_findings(st, "omniglot"))
    cmp = compare({k: [run_path(runs, k, 0)] for k in LOSSES}, reference="contrastive")
    abl = st.runs.rename(columns={"loss": "variant"})
    write_experiment(
        results / "omniglot" / "ablations" / "m_per_class",
        abl,
        cmp,
        {
            "loss": "multi_similarity",
            "reference": "contrastive",
            "question": "Does m_per_class matter?",
            "summary": ablation_summary("m_per_class", "multi_similarity", cmp),
            "conclusions": ["arm sentence"],
            "not_converged": [],
        },
    )
    mm = compare({k: [run_path(runs, k, 0)] for k in LOSSES})
    write_experiment(
        results / "omniglot" / "multimodal",
        st.runs,
        mm,
        {"question": "How much fine structure?", "summary": multimodal_summary(mm, "on omniglot")},
    )
    (reports / "omniglot" / "train").mkdir(parents=True)
    for page in (
        "omniglot/evaluate.html",
        "omniglot/prepare.html",
        "omniglot/train/rsw-seed0.html",
    ):
        (reports / page).write_text("<html></html>")
    (reports / "geometry.html").write_text(
        f'<div class="jp-Cell celltag_parameters"><img src="data:image/png;base64,AAAA"></div>'
        f'<div class="jp-Cell celltag_headline"><img alt="x" src="{PNG}"></div>'
    )
    return config, results, reports, st


def test_index_leads_with_question_headline_and_computed_takeaways(study):
    config, results, reports, st = study
    index = report.build_index(config, results, reports)
    html = index.html
    order = [html.index(s) for s in ("Which of 3 deep metric", 'id="headline"', 'id="takeaways"')]
    assert order == sorted(order)
    assert html.count("data:image/png;base64,") >= 4  # headline, main, ablation, multimodal
    findings = json.loads((results / "omniglot" / "findings.json").read_text())["sentences"]
    for sentence in findings:
        assert sentence.replace("'", "&#39;") in html
    best = st.table.index[0]
    assert f"Best MAP@R on omniglot: {best}, {st.table.loc[best, 'map@r']:.1f}%" in html
    assert "Ablation m_per_class (multi_similarity), every arm vs contrastive on MAP@R" in html
    assert "Trained on coarse labels only" in html
    assert "There is no published retrieval number under this protocol" in html
    assert f'src="{PNG}"' in html  # the geometry section's figure is its page's headline cell


def test_a_one_seed_index_states_no_verdict_in_its_headline(study, tmp_path, make_run):
    """One seed: the headline's caption and legend name no tie and no significant difference
    (issue #16); from 3 seeds on the caption explains the tied/below markers."""
    config, results, reports, _ = study
    html = report.build_index(config, results, reports).html
    assert "no tied/below verdict" in html
    assert "significantly below" not in html and "tied with it" not in html
    runs = tmp_path / "runs3"
    for loss, noise in LOSSES.items():
        for seed in range(3):
            make_run(runs, loss, seed, noise)
    table = S.load_study(runs, list(LOSSES), [0, 1, 2]).table
    three = {"omniglot": {"MAP@R": S.headline_frame(table, "map@r")}}
    assert "tied with it (Holm-adjusted" in report.headline_caption(three)


def test_index_is_offline_relative_and_has_no_empty_cell(study):
    config, results, reports, _ = study
    html = report.build_index(config, results, reports).html
    assert not re.search(r"\bnan\b", html, re.I)
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert not re.search(r'(src|href)="/', html)
    assert str(results.parent) not in html
    links = re.findall(r'href="([^"#][^"]*)"', html)
    assert "omniglot/evaluate.html" in links and "omniglot/ablation-m_per_class.html" in links
    assert "omniglot/train/rsw-seed0.html" in links and "geometry.html" in links


def test_published_numbers_are_shown_with_their_protocol(study):
    _, results, reports, st = study
    (results / "omniglot").rename(results / "cub200")
    table = results / "cub200" / "table.csv"
    table.write_text(table.read_text().replace("triplet", "proxy_anchor"))
    raw = copy.deepcopy(yaml.safe_load((REPO / "params.yaml").read_text()))
    raw["study"].update(
        datasets=["cub200"],
        losses=["contrastive", "proxy_anchor", "rsw"],
        ablations=[],
        multimodal=[],
    )
    html = report.build_index(config_from_dict(raw), results, reports).html
    assert "Published Recall@1 is shown beside ours for orientation only" in html
    ours = f"{st.table.loc['triplet', 'recall@1']:.1f}"
    assert re.search(rf"<td>proxy_anchor</td>\s*<td>{ours}</td>\s*<td>69.9</td>", html)
    assert "Kim et al. 2020, R50/512" in html


def test_missing_results_name_the_stage(study):
    config, results, reports, _ = study
    (results / "omniglot" / "multimodal.json").unlink()
    with pytest.raises(FileNotFoundError, match="dvc repro multimodal@omniglot"):
        report.build_index(config, results, reports)


def test_write_index_and_page_figure(study, tmp_path):
    config, results, reports, _ = study
    out = report.write_index(
        report.build_index(config, results, reports), tmp_path / "x" / "i.html"
    )
    assert out.read_text().startswith("<!doctype html>")
    assert report.page_figure(reports / "geometry.html") == PNG
    assert report.page_figure(reports / "omniglot" / "evaluate.html") is None


def test_a_committed_paper_grade_study_leads_the_index_with_its_verdicts(study, tmp_path, make_run):
    """Issue #16: the index leads with the paper-grade verdicts (headline, first takeaways, a
    section with its table) and labels the quick study's one seed; it names the version read."""
    config, results, reports, _ = study
    paper, runs = tmp_path / "paper", tmp_path / "paper_runs"
    assert "Paper-grade" not in report.build_index(config, results, reports, paper).html
    for loss, noise in LOSSES.items():
        for seed in range(3):
            make_run(runs, loss, seed, noise)
    st = S.load_study(runs, list(LOSSES), [0, 1, 2])
    main = S.study_findings(st, "omniglot")
    S.write_results(st, paper / "omniglot", main)
    (paper / "omniglot" / "findings.json").write_text(
        json.dumps({"sentences": [*main, "arm sentence"], "main": main, "transfer": ["τ = 1"]})
    )
    index = report.build_index(config, results, reports, paper)
    assert index.takeaways[: len(main) + 1] == [f"Paper-grade study: {x}" for x in main] + ["τ = 1"]
    assert not any("arm sentence" in t for t in index.takeaways)  # ablations: on its own page
    quick = [t for t in index.takeaways if t.startswith("Quick study: ")]
    assert quick and index.takeaways.index(quick[0]) > len(main)
    html = index.html
    assert html.index('id="paper-omniglot"') < html.index('id="main-omniglot"')
    assert "the paper-grade comparison (3 seeds)" in html and "vs best" in html
    assert "main comparison of the quick study (one training run)" in html
    assert "tied with it (Holm-adjusted" in html  # the headline carries the verdicts
    assert "git blob " in html and 'href="paper/omniglot.html"' not in html  # page not rendered
    (paper / "omniglot" / "findings.json").write_text(json.dumps({"sentences": main}))
    with pytest.raises(ValueError, match="predates its main/transfer parts"):
        report.build_index(config, results, reports, paper)  # an old report: rerun, never guess
    (paper / "omniglot" / "findings.json").write_text(json.dumps({"main": main, "transfer": []}))
    (reports / "paper").mkdir()
    (reports / "paper" / "omniglot.html").write_text("<html></html>")
    assert 'href="paper/omniglot.html"' in report.build_index(config, results, reports, paper).html
