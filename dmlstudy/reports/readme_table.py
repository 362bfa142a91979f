"""README's results tables, generated from the committed results: it rewrites the part of
README.md between two markers, so the README can never disagree with the committed numbers (a
test checks it). The paper-grade study's tables (``studies/paper/results/<dataset>/table.csv``,
``make paper``: several seeds, verdicts over seeds and test classes) lead; the quick default's
(``results/<dataset>/table.csv``, written by the evaluation stage) follow::

    python -m dmlstudy.reports.readme_table            # rewrite README.md's results section
    python -m dmlstudy.reports.readme_table --check    # exit 1 if README.md is out of date

>>> update("a\\n<!-- results:start -->\\nold\\n<!-- results:end -->\\nb", "new")
'a\\n<!-- results:start -->\\nnew\\n<!-- results:end -->\\nb'
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from dmlstudy.analysis.study_table import VERDICT_SEEDS, read_table, runs_label, vs_best

START = "<!-- results:start -->"
END = "<!-- results:end -->"
NOTE = (
    "<!-- generated from studies/paper/results/*/table.csv and results/*/table.csv by "
    "`python -m dmlstudy.reports.readme_table`; do not edit by hand -->"
)


def result_datasets(results_dir: str | Path) -> list[str]:
    """Datasets with a committed ``table.csv`` below ``results_dir``, sorted."""
    root = Path(results_dir)
    return sorted(p.parent.name for p in root.glob("*/table.csv")) if root.is_dir() else []


def markdown_table(table: pd.DataFrame) -> str:
    """One dataset's table (percent, best MAP@R first) as GitHub markdown."""
    seeds = "map@r_seed_ci" in table.columns
    verdict = int(table["seeds"].max()) >= VERDICT_SEEDS and "map@r_mdd" in table.columns
    head = ["loss", "R@1", "R@1 95% CI", "MAP@R", "MAP@R 95% CI"]
    head += ["MAP@R ± (seeds)"] if seeds else []
    head += ["vs best MAP@R"] if verdict else []
    head += ["converged"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for loss, t in table.iterrows():
        cells = [
            str(loss),
            f"{t['recall@1']:.1f}",
            f"[{t['recall@1_low']:.1f}, {t['recall@1_high']:.1f}]",
            f"{t['map@r']:.1f}",
            f"[{t['map@r_low']:.1f}, {t['map@r_high']:.1f}]",
        ]
        cells += [f"± {t['map@r_seed_ci']:.1f}"] if seeds else []
        cells += [vs_best(t, "map@r")] if verdict else []
        cells += ["yes" if t["converged"] else "**not converged**"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


#: Where ``make paper`` commits its report (one folder per dataset).
PAPER_RESULTS = "studies/paper/results"


def section(results_dir: str | Path, paper_dir: str | Path | None = None) -> str:
    """The generated README text: one table per dataset with committed results, the
    paper-grade study's (below ``paper_dir``) first."""
    paper = [(Path(paper_dir), d) for d in result_datasets(paper_dir)] if paper_dir else []
    quick = [(Path(results_dir), d) for d in result_datasets(results_dir)]
    if not paper and not quick:
        return (
            f"{NOTE}\nNo results are committed yet. Run the study (`make study`), commit "
            "`dvc.lock` and `results/`, then `python -m dmlstudy.reports.readme_table`."
        )
    parts = [NOTE]
    for root, d in paper + quick:
        which = (
            "paper-grade study (`make paper`)"
            if (root, d) in paper
            else "quick default study (`make study`)"
        )
        table = read_table(root / d / "table.csv")
        seeds = int(table["seeds"].max())
        if seeds >= VERDICT_SEEDS and "map@r_mdd" in table.columns:
            how = (
                "*vs best*: difference in points [95% CI] and Holm-adjusted paired test over "
                "seeds and test classes (tied: p ≥ 0.05, read as closer than the smallest "
                "difference the design detects with 80% power)"
            )
        else:
            how = (
                f"{runs_label(seeds)}: estimates and intervals only, no tied/below verdict "
                f"(a test over test classes ignores training randomness; it needs "
                f"≥ {VERDICT_SEEDS} seeds)"
            )
        parts.append(
            f"**{d}, {which}**: test classes, percent, best MAP@R first; {seeds} "
            f"seed{'s' if seeds > 1 else ''}; 95% CI: "
            f"bootstrap over test classes; {how}.\n\n{markdown_table(table)}"
        )
    return "\n\n".join(parts)


def update(text: str, body: str) -> str:
    """``text`` with the part between :data:`START` and :data:`END` replaced by ``body``."""
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise ValueError(f"README.md needs exactly one {START} ... {END} block")
    head, rest = text.split(START)
    _, tail = rest.split(END)
    return f"{head}{START}\n{body}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("::")[0])
    ap.add_argument("--readme", default="README.md")
    ap.add_argument("--results", default="results")
    ap.add_argument("--paper", default=PAPER_RESULTS, help="the paper-grade study's results")
    ap.add_argument("--check", action="store_true", help="exit 1 if README.md is out of date")
    args = ap.parse_args(argv)
    readme = Path(args.readme)
    text = readme.read_text(encoding="utf-8")
    new = update(text, section(args.results, args.paper))
    if args.check:
        if new != text:
            print(
                f"{readme} disagrees with {args.results}/ or {args.paper}/: run python -m "
                "dmlstudy.reports.readme_table",
                file=sys.stderr,
            )
            return 1
        return 0
    readme.write_text(new, encoding="utf-8")
    print(f"{readme}: results section rewritten from {args.results}/", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
