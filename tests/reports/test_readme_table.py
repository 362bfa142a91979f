"""README's results table is generated from the committed results and agrees with them."""

from __future__ import annotations

from pathlib import Path

import pytest

from dmlstudy.analysis import study_table as S
from dmlstudy.reports import readme_table as T

REPO = Path(__file__).resolve().parents[2]


def test_readme_agrees_with_the_committed_results():
    """Whatever is committed under results/ (nothing yet, or the full study) is what README.md
    shows: regenerate with `python -m dmlstudy.reports.readme_table` after committing results."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert T.update(text, T.section(REPO / "results", REPO / T.PAPER_RESULTS)) == text, (
        "README.md's results section is out of date: python -m dmlstudy.reports.readme_table"
    )


def test_section_is_made_from_table_csv(tmp_path, make_run):
    assert "No results are committed yet" in T.section(tmp_path)
    for loss, noise in (("a", 1.0), ("b", 2.6)):
        make_run(tmp_path / "runs", loss, 0, noise, converged=loss == "a")
    study = S.load_study(tmp_path / "runs", ["a", "b"], [0])
    S.write_results(study, tmp_path / "results" / "omniglot", [])
    (tmp_path / "results" / "tuning").mkdir()
    body = T.section(tmp_path / "results")
    assert T.result_datasets(tmp_path / "results") == ["omniglot"]
    t = study.table
    row = (
        f"| a | {t.loc['a', 'recall@1']:.1f} | [{t.loc['a', 'recall@1_low']:.1f}, "
        f"{t.loc['a', 'recall@1_high']:.1f}] | {t.loc['a', 'map@r']:.1f} |"
    )
    assert row in body and "**not converged**" in body
    # one seed: estimates and intervals of one training run, no tied/below verdict (issue #16)
    assert "one training run" in body and "vs best" not in body and "below:" not in body
    assert "1 seed;" in body and "nan" not in body.lower()


def test_cli_rewrites_and_checks(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n{T.START}\nstale\n{T.END}\nrest\n")
    args = ["--readme", str(readme), "--results", str(tmp_path / "results")]
    assert T.main([*args, "--check"]) == 1
    assert "disagrees with" in capsys.readouterr().err
    assert T.main(args) == 0 and T.main([*args, "--check"]) == 0
    assert readme.read_text().endswith(f"{T.END}\nrest\n") and "stale" not in readme.read_text()
    readme.write_text("no markers")
    with pytest.raises(ValueError, match="needs exactly one"):
        T.main(args)


def test_the_paper_grade_table_leads_and_carries_its_verdicts(tmp_path, make_run):
    for loss, noise in (("a", 1.0), ("b", 2.6)):
        make_run(tmp_path / "runs", loss, 0, noise)
        for seed in range(3):
            make_run(tmp_path / "paper_runs", loss, seed, noise)
    quick = S.load_study(tmp_path / "runs", ["a", "b"], [0])
    S.write_results(quick, tmp_path / "results" / "omniglot", [])
    body = T.section(tmp_path / "results", tmp_path / "paper")
    assert "paper-grade" not in body and "vs best" not in body  # none committed yet: quick only
    paper = S.load_study(tmp_path / "paper_runs", ["a", "b"], [0, 1, 2])
    S.write_results(paper, tmp_path / "paper" / "omniglot", [])
    body = T.section(tmp_path / "results", tmp_path / "paper")
    first, second = body.split("**omniglot, ")[1:]
    assert first.startswith("paper-grade study (`make paper`)**") and "3 seeds" in first
    assert "| vs best MAP@R |" in first and "| b |" in first and "below:" in first
    assert second.startswith("quick default study (`make study`)**") and "vs best" not in second
