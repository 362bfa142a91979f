"""The study's index page, led by its findings: the question, a headline figure (every loss's
R@1 and MAP@R with intervals, ties with the best marked), the published numbers beside ours,
computed takeaways, then one section per page with its figure and link.

Where the paper-grade study (``make paper``) has committed its report for a dataset
(``studies/paper/results/<dataset>/``), the page leads with it: the headline figure is its table
(several seeds, tied/below verdicts over seeds and test classes), its main and transfer sentences
come first, and a section shows its table; the quick study's one-seed numbers follow, labelled
so. Those files are read, not DVC dependencies (DVC joins studies/paper/dvc.yaml into the same
graph: a dependency would make ``dvc repro`` run the paper-grade study), so the page names the
version it read (git blob id), as the evaluation page does.

Everything else is read from ``results/`` (percent) and rendered with the Jinja2 template
``templates/index.html.j2``; figures are embedded as PNG data, links are relative, so the page
works offline and from any folder.

>>> data_uri(b"abc")
'data:image/png;base64,YWJj'
"""

from __future__ import annotations

import base64
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
from matplotlib.figure import Figure

from dmlstudy.analysis.beside import git_blob_id
from dmlstudy.analysis.results import LABELS, PUBLISHED_R1, published_note
from dmlstudy.analysis.study_table import (
    comparison_frame,
    display_table,
    headline_frame,
    read_table,
    runs_label,
)
from dmlstudy.config import StudyConfig
from dmlstudy.plots import headline_figure, interval_plot, recall_at_k
from dmlstudy.plots.comparison import VS_REFERENCE, frame_verdict
from dmlstudy.study.runs import train_overrides

TEMPLATES = Path(__file__).parent / "templates"
#: Cells tagged so in a notebook hold its page's key figure (nbconvert writes ``celltag_<tag>``).
HEADLINE_TAG = "headline"
_IMG = re.compile(r'<img[^>]*src="(data:image/png;base64,[^"]+)"')


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def figure_uri(fig: Figure, dpi: int = 100) -> str:
    """A figure as an embeddable PNG data URI."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return data_uri(buf.getvalue())


def page_figure(page: str | Path, tag: str = HEADLINE_TAG) -> str | None:
    """The first PNG of the cell tagged ``tag`` in a rendered notebook page, as a data URI."""
    text = Path(page).read_text(encoding="utf-8")
    at = text.find(f"celltag_{tag}")
    found = _IMG.search(text, at) if at >= 0 else None
    return found.group(1) if found else None


def report_pages(reports_dir: str | Path) -> dict[str, list[str]]:
    """Rendered pages below ``reports_dir`` grouped by their first folder ("" for top level),
    as paths relative to ``reports_dir``; the index itself is left out."""
    root = Path(reports_dir)
    groups: dict[str, list[str]] = {}
    for page in sorted(root.rglob("*.html")):
        rel = page.relative_to(root)
        if rel.as_posix() == "index.html":
            continue
        groups.setdefault(rel.parts[0] if len(rel.parts) > 1 else "", []).append(rel.as_posix())
    return groups


def _json(path: Path, stage: str) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run {stage} first (dvc repro {stage})")
    return json.loads(path.read_text(encoding="utf-8"))


def _csv(path: Path, stage: str) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run {stage} first (dvc repro {stage})")
    return pd.read_csv(path)


@dataclass
class IndexPage:
    """The rendered page and what it is made of (the report notebook shows the parts)."""

    html: str
    headline: Figure
    takeaways: list[str]
    published: list[dict[str, Any]] = field(default_factory=list)


def _published(dataset: str, table: pd.DataFrame) -> dict[str, Any]:
    numbers = PUBLISHED_R1.get(dataset, {})
    rows = [
        {
            "loss": loss,
            "ours: R@1 (%)": f"{table.loc[loss, 'recall@1']:.1f}",
            "published R@1 (%)": f"{value:.1f}",
            "published protocol": source,
        }
        for loss, (value, source) in numbers.items()
        if loss in table.index
    ]
    html = pd.DataFrame(rows).to_html(index=False, border=0) if rows else ""
    return {"dataset": dataset, "note": published_note(dataset), "table": html}


def _section(id: str, title: str, text: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "id": id,
        "title": title,
        "text": text,
        "table": "",
        "figure": None,
        "links": [],
        **extra,
    }


def _question(config: StudyConfig) -> tuple[str, str]:
    s = config.study
    question = (
        f"Which of {len(s.losses)} deep metric learning losses retrieves images of unseen classes "
        f"best when all are trained under one protocol, and which of the differences are real?"
    )
    parts = []
    for d in s.datasets:
        t = train_overrides(config, d)
        parts.append(
            f"{d}: {t.get('backbone')} {'pretrained' if t.get('pretrained') else 'from scratch'}, "
            f"{t.get('embedding_dim')}-d"
        )
    protocol = (
        f"Datasets {', '.join(parts)}; seeds {list(s.seeds)}; profile {s.profile}. Each run "
        "trains to its validation plateau and is evaluated at its best validation MAP@R epoch on "
        "test classes never seen in training. All numbers are percent."
    )
    return question, protocol


@dataclass(frozen=True)
class PaperGrade:
    """The committed paper-grade report of one dataset, as the index shows it."""

    panels: dict[str, pd.DataFrame]
    sentences: list[str]
    section: dict[str, Any]
    seeds: int
    source: str


def paper_grade(paper_dir: str | Path | None, dataset: str, reports: Path) -> PaperGrade | None:
    """The paper-grade study of ``dataset`` committed below ``paper_dir``, or None."""
    if paper_dir is None or not (Path(paper_dir) / dataset / "table.csv").is_file():
        return None
    folder = Path(paper_dir) / dataset
    table = read_table(folder / "table.csv")
    seeds = int(table["seeds"].max())
    source = f"{folder / 'table.csv'} (git blob {git_blob_id(folder / 'table.csv')[:12]})"
    findings = _json(folder / "findings.json", f"studies/paper/dvc.yaml:report@{dataset}")
    if "main" not in findings:
        raise ValueError(
            f"{folder / 'findings.json'} predates its main/transfer parts: rerun the paper-grade "
            f"report (`dvc repro studies/paper/dvc.yaml:report@{dataset}`; it trains nothing)"
        )
    # the main sentences (the last says how many seeds) labelled; transfer's name their profile
    sentences = [f"Paper-grade study: {x}" for x in findings["main"]] + findings["transfer"]
    shown = display_table(table, dataset)
    keep = [c for c in shown.columns if c.startswith(("R@1", "MAP@R")) or c == "converged"]
    page = reports / "paper" / f"{dataset}.html"
    section = _section(
        f"paper-{dataset}",
        f"{dataset}: the paper-grade comparison ({seeds} seeds)",
        [
            f"Every loss on {seeds} seeds (`make paper`); the intervals and paired tests cover "
            f"training randomness and test classes together. Read from {source}; ablations on "
            "several seeds, the budget check and the transfer check are on its report page."
        ],
        table=shown[keep].reset_index().to_html(index=False, border=0),
        links=[{"href": f"paper/{dataset}.html", "text": "paper-grade report"}]
        if page.is_file()
        else [],
    )
    panels = {LABELS[m]: headline_frame(table, m) for m in ("recall@1", "map@r")}
    return PaperGrade(panels, sentences, section, seeds, source)


def build_index(
    config: StudyConfig,
    results_dir: str | Path,
    reports_dir: str | Path,
    paper_dir: str | Path | None = None,
) -> IndexPage:
    """Read every result of the study and render the index page (led by the paper-grade study
    committed below ``paper_dir`` where it has a dataset's report)."""
    results, reports = Path(results_dir), Path(reports_dir)
    study = config.study
    pages = report_pages(reports)
    panels, takeaways, published, sections = {}, [], [], []
    papers = {d: paper_grade(paper_dir, d, reports) for d in study.datasets}
    lead = {d: p for d, p in papers.items() if p is not None}
    for p in lead.values():
        takeaways += p.sentences
    for d in study.datasets:
        table = read_table(results / d / "table.csv")
        panels[d] = {LABELS[m]: headline_frame(table, m) for m in ("recall@1", "map@r")}
        own = _json(results / d / "findings.json", f"evaluate@{d}")["sentences"]
        if d in lead:  # the quick study's one seed, after the paper-grade verdicts
            own = [f"Quick study: {x}" for x in own]
            sections.append(lead[d].section)
        takeaways += own
        published.append(_published(d, table))
        compact = display_table(table, d)
        keep = [c for c in compact.columns if c.startswith(("R@1", "MAP@R")) or c == "converged"]
        curves = _csv(results / d / "recall_at_k.csv", f"evaluate@{d}")
        sections.append(
            _section(
                f"main-{d}",
                f"{d}: the main comparison"
                + (
                    f" of the quick study ({runs_label(int(table['seeds'].max()))})"
                    if d in lead
                    else ""
                ),
                [
                    "Test-set R@1 and MAP@R of every loss, best MAP@R first; the evaluation "
                    "page adds R@2-8, R-Precision, NMI, convergence curves, what each loss "
                    "trained with, the tuning campaign, Recall@K, galleries and a projection."
                ],
                table=compact[keep].reset_index().to_html(index=False, border=0),
                figure=figure_uri(recall_at_k(curves, title=f"{d}: Recall@K (%)")),
                links=[{"href": f"{d}/evaluate.html", "text": f"{d}: evaluation report"}],
            )
        )
        for name in study.ablations:
            stage = f"ablation@{d}-{name}"
            summary = _json(results / d / "ablations" / f"{name}.json", stage)
            takeaways.append(summary["summary"])
            cmp = _csv(results / d / "ablations" / f"{name}-comparison.csv", stage)
            arms = _csv(results / d / "ablations" / f"{name}.csv", stage)
            fig = interval_plot(
                comparison_frame(cmp, "map@r", runs=arms, label="variant"),
                "MAP@R",
                title=f"{d}: ablation {name} ({summary['loss']})",
                names=VS_REFERENCE,
            )
            sections.append(
                _section(
                    f"ablation-{d}-{name}",
                    f"{d}: ablation {name}",
                    [summary["question"], *summary["conclusions"]],
                    figure=figure_uri(fig),
                    links=[{"href": f"{d}/ablation-{name}.html", "text": "ablation report"}],
                )
            )
        if d in study.multimodal:
            summary = _json(results / d / "multimodal.json", f"multimodal@{d}")
            takeaways.append(summary["summary"])
            cmp = _csv(results / d / "multimodal-comparison.csv", f"multimodal@{d}")
            mm = _csv(results / d / "multimodal.csv", f"multimodal@{d}")
            fig = interval_plot(
                comparison_frame(cmp, "map@r", sort=True, runs=mm),
                "fine-label MAP@R",
                title=f"{d}: fine structure kept after coarse-label training",
            )
            sections.append(
                _section(
                    f"multimodal-{d}",
                    f"{d}: the multi-modal experiment",
                    [summary["question"], summary["summary"]],
                    figure=figure_uri(fig),
                    links=[{"href": f"{d}/multimodal.html", "text": "multi-modal report"}],
                )
            )
        runs = [p for p in pages.get(d, []) if p.startswith(f"{d}/train/")]
        sections.append(
            _section(
                f"runs-{d}",
                f"{d}: data and training runs",
                [f"The prepared dataset and the {len(runs)} training run pages."],
                links=[{"href": f"{d}/prepare.html", "text": "prepared dataset"}]
                + [{"href": p, "text": Path(p).stem} for p in runs],
            )
        )
    if "geometry.html" in pages.get("", []):
        sections.append(
            _section(
                "geometry",
                "What each loss does: gradients on a 2-D toy batch",
                ["−∂L/∂x of every loss on three seeded classes, and RSW's warp."],
                figure=page_figure(reports / "geometry.html"),
                links=[{"href": "geometry.html", "text": "loss geometry report"}],
            )
        )
    sections.append(
        _section(
            "report",
            "This page as a notebook",
            ["The report notebook that assembled this page, with its inputs."],
            links=[{"href": "report.html", "text": "report notebook"}],
        )
    )
    title = "dmlstudy: deep metric learning losses under one protocol"
    if lead and len(lead) == len(study.datasets):  # the headline is the paper-grade study's
        panels = {d: p.panels for d, p in lead.items()}
        figure_title = "Paper-grade study: test-set R@1 and MAP@R (%) of every loss"
        sources = "; ".join(p.source for p in lead.values())
        caption = f"The paper-grade study (`make paper`), read from {sources}. "
    else:
        figure_title, caption = "Test-set R@1 and MAP@R (%) of every loss", ""
    headline = headline_figure(panels, title=figure_title)
    question, protocol = _question(config)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined
    )
    html = env.get_template("index.html.j2").render(
        title=title,
        question=question,
        protocol=protocol,
        headline={
            "uri": figure_uri(headline),
            "alt": "R@1 and MAP@R of every loss with 95% intervals",
            "caption": caption + headline_caption(panels),
        },
        takeaways=takeaways,
        published=published,
        sections=sections,
        footer="Generated by dmlstudy from results/ (dvc repro report)"
        + (f" and the committed paper-grade study ({paper_dir})" if lead else "")
        + ". All numbers are percent.",
    )
    return IndexPage(html, headline, takeaways, published)


def headline_caption(panels: dict[str, dict[str, pd.DataFrame]]) -> str:
    """The headline figure's caption: its markers' meaning, a verdict only where every panel
    has one (3 seeds or more: :func:`dmlstudy.analysis.study_table.headline_frame`)."""
    verdict = all(frame_verdict(f) for frames in panels.values() for f in frames.values())
    marks = (
        "Star: the best loss; filled: tied with it (Holm-adjusted paired test over seeds and "
        "test classes); hollow: significantly below"
        if verdict
        else "Star: the highest mean; the other losses are drawn alike: with fewer than 3 seeds "
        "there is no tied/below verdict (a test over the test classes of so few training runs "
        "ignores training randomness)"
    )
    return (
        "Mean over seeds with the 95% CI of a bootstrap over test classes. "
        f"{marks}; red names: runs that did not converge."
    )


def write_index(index: IndexPage, path: str | Path) -> Path:
    """Write the page (folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(index.html, encoding="utf-8")
    return path
