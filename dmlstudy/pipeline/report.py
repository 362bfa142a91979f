"""The study's index page: links to every rendered notebook plus the headline tables.

>>> html = index_html("dmlstudy", {"omniglot": ["omniglot/evaluate.html"]},
...                   {"omniglot": "<table></table>"})
>>> '<a href="omniglot/evaluate.html">' in html
True
"""

from __future__ import annotations

import html as _html
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from dmlstudy.pipeline.results import display_table, summarize


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


def dataset_tables(
    results_dir: str | Path, datasets: Sequence[str], losses: Sequence[str]
) -> dict[str, pd.DataFrame]:
    """Per dataset: the percent table (mean ± CI) of the study losses from ``runs.csv``."""
    out = {}
    for d in datasets:
        path = Path(results_dir) / d / "runs.csv"
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: run evaluate@{d} first")
        runs = pd.read_csv(path)
        out[d] = display_table(summarize(runs[runs["loss"].isin(losses)]), d)
    return out


def index_html(title: str, pages: Mapping[str, Sequence[str]], tables: Mapping[str, str]) -> str:
    """A small self-contained HTML index: one section per group with its tables and links."""
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{_html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
        "table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px}</style></head><body>",
        f"<h1>{_html.escape(title)}</h1>",
    ]
    for group in sorted(set(pages) | set(tables)):
        parts.append(f"<h2>{_html.escape(group or 'study')}</h2>")
        if group in tables:
            parts.append(tables[group])
        links = "".join(
            f'<li><a href="{_html.escape(p)}">{_html.escape(p)}</a></li>'
            for p in pages.get(group, [])
        )
        if links:
            parts.append(f"<ul>{links}</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)
