"""The study's main table: every loss's test metrics in percent; for R@1 and MAP@R the 95% CI by
a bootstrap over test classes, the Student-t 95% CI over seeds (with >= 2 seeds), and with >= 3
seeds whether the loss is tied with the best (Holm-adjusted paired test over seeds and classes,
:mod:`dmlstudy.analysis.compare`, with the difference, its interval and the minimal detectable
difference; fewer seeds show "one training run" and no verdict); and
whether its runs converged (stopped at their validation plateau).

:func:`load_study` gathers everything the evaluation report shows, :func:`write_results` the
small files committed under ``results/<dataset>/`` (percent): ``table.csv``, ``runs.csv``,
``metrics/<loss>.json`` (``dvc metrics show``: one row per loss), and the ``dvc plots`` CSVs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dmlstudy.analysis import findings
from dmlstudy.analysis.compare import compare, verdict_text
from dmlstudy.analysis.convergence import load_convergence, unconverged
from dmlstudy.analysis.results import (
    LABELS,
    METRICS,
    PUBLISHED_R1,
    collect_runs,
    epochs_for_readers,
    percent,
    recall_curves,
    summarize,
)
from dmlstudy.training.rundir import run_path

#: The metrics with intervals and ties in the main table and the headline figure.
HEADLINE = ("recall@1", "map@r")
BOOTSTRAP = "95% CI, bootstrap over test classes"
SEED_T = "± 95% CI, Student t over seeds"
#: fewer seeds than this: estimates and intervals of the training runs, no tied/below verdict
VERDICT_SEEDS = 3


def runs_label(seeds: int) -> str:
    """ "one training run" / "2 training runs": what a table with < 3 seeds shows."""
    return "one training run" if seeds == 1 else f"{seeds} training runs"


def study_findings(study: StudyResults, dataset: str) -> list[str]:
    """The evaluation's computed sentences (:func:`dmlstudy.analysis.findings.study_findings`)."""
    return findings.study_findings(
        study.comparison,
        f"on {dataset}",
        unconverged(study.marks),
        int(study.runs.groupby("loss").size().max()),
    )


@dataclass
class StudyResults:
    """One dataset's evaluation: per-run rows, the comparison, the main table and curves."""

    runs: pd.DataFrame  # collect_runs (fractions)
    comparison: pd.DataFrame  # compare() rows (fractions)
    table: pd.DataFrame  # main_table (percent)
    recall_at_k: pd.DataFrame  # loss, seed, k, recall (fractions)
    curves: pd.DataFrame  # convergence curves: loss, seed, epoch (1-based), val_map@r, decision
    marks: pd.DataFrame  # per run: best_epoch, lr_drops, epochs_run, converged


def load_study(runs_dir: str | Path, losses: Sequence[str], seeds: Sequence[int]) -> StudyResults:
    """Read every run of ``losses`` × ``seeds`` below ``runs_dir`` and compare the losses."""
    runs = collect_runs(runs_dir, losses, seeds)
    comparison = compare({loss: [run_path(runs_dir, loss, s) for s in seeds] for loss in losses})
    curves, marks = load_convergence(runs_dir, losses, seeds)
    return StudyResults(
        runs=runs,
        comparison=comparison,
        table=main_table(runs, comparison),
        recall_at_k=recall_curves(runs_dir, losses, seeds),
        curves=curves,
        marks=marks,
    )


def main_table(
    runs: pd.DataFrame, comparison: pd.DataFrame, metrics: Sequence[str] = METRICS
) -> pd.DataFrame:
    """Per loss, best MAP@R first (percent): ``<m>`` (mean), ``<m>_seed_ci`` (only with >= 2
    seeds), and for :data:`HEADLINE` metrics ``<m>_low``/``<m>_high`` (class bootstrap),
    ``<m>_best`` (the highest mean), and with >= 3 seeds (:data:`VERDICT_SEEDS`) the verdict:
    ``<m>_p_holm``, ``<m>_tied`` (tied with the best, or is it),
    ``<m>_diff``/``<m>_diff_low``/``<m>_diff_high`` (vs the best, seeds × classes interval)
    and ``<m>_mdd`` (the smallest difference the design detects, points); then ``seeds``,
    ``test`` (what the paired test resamples), ``epochs`` ("best/run" per seed, 1-based),
    ``converged`` (every seed) and ``unconverged`` (seeds that hit the epoch cap)."""
    summary = summarize(runs, metrics, sort_by="map@r" if "map@r" in metrics else None)
    seeds = int(summary["seeds"].max())
    cmp = comparison.set_index(["method", "metric"])
    rows = {}
    for loss, s in summary.iterrows():
        row: dict[str, object] = {}
        for m in metrics:
            row[m] = 100 * s[m]
            if seeds >= 2:
                row[f"{m}_seed_ci"] = 100 * s[f"{m}_ci"]
            if m in HEADLINE:
                c = cmp.loc[(loss, m)]
                row.update(
                    {
                        f"{m}_low": 100 * c["ci_low"],
                        f"{m}_high": 100 * c["ci_high"],
                        f"{m}_best": c["reference"] == loss,
                    }
                )
                # fewer seeds: a test over test classes of these trained weights, not a verdict
                # on the losses (it would ignore training randomness), so not in the table
                if seeds >= VERDICT_SEEDS and "mdd" in c.index:
                    row[f"{m}_p_holm"] = float(c["p_holm"])
                    row[f"{m}_tied"] = bool(c["tied"])
                    row[f"{m}_diff"] = 100 * c["diff"]
                    row[f"{m}_diff_low"] = 100 * c["diff_low"]
                    row[f"{m}_diff_high"] = 100 * c["diff_high"]
                    row[f"{m}_mdd"] = 100 * c["mdd"]
        mine = runs[runs["loss"] == loss].sort_values("seed")
        row.update(
            seeds=int(s["seeds"]),
            test=str(comparison["test"].iloc[0]),
            epochs=", ".join(  # 1-based, as every report counts epochs
                f"{b + 1}/{e}" for b, e in zip(mine["best_epoch"], mine["epochs_run"])
            ),
            converged=bool(mine["converged"].all()),
            unconverged=int((~mine["converged"].astype(bool)).sum()),
        )
        rows[loss] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "loss"
    # the precision table.csv keeps, so that every page (from memory or from the file) rounds alike
    return table.round(4)


def vs_best(t: pd.Series, m: str) -> str:
    """The verdict with its effect size (points, 95% CI) and, for a tie, what the design could
    have detected: "tied (closer than 1.9 points at 5 seeds): -0.4 [-1.6, 0.8], p = 0.4"."""
    if t[f"{m}_best"]:
        return "best"
    cols = ("diff", "diff_low", "diff_high", "p_holm")
    d, lo, hi, p = (float(t[f"{m}_{c}"]) for c in cols)
    tied, mdd, seeds = bool(t[f"{m}_tied"]), float(t[f"{m}_mdd"]), int(t["seeds"])
    return verdict_text(d, lo, hi, p, tied, mdd, seeds, reference=float(t[m]) - d)


def display_table(table: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """The main table as a report shows it: strings in percent, intervals labelled, no empty
    cell (a column exists only where it has a value for every loss)."""
    seeds = "seed_ci" in " ".join(table.columns)
    n_seeds = int(table["seeds"].max())
    verdict = n_seeds >= VERDICT_SEEDS and all(f"{m}_mdd" in table.columns for m in HEADLINE)
    boot = BOOTSTRAP if verdict else f"{BOOTSTRAP}; {runs_label(n_seeds)}"
    out = pd.DataFrame(index=table.index)
    for m in [c for c in METRICS if c in table.columns]:
        name = LABELS[m]
        out[name] = table[m].map(lambda v: f"{v:.1f}")
        if m in HEADLINE:
            out[f"{name} ({boot})"] = [
                f"[{lo:.1f}, {hi:.1f}]" for lo, hi in zip(table[f"{m}_low"], table[f"{m}_high"])
            ]
        if seeds:
            out[f"{name} ({SEED_T})"] = table[f"{m}_seed_ci"].map(lambda v: f"± {v:.1f}")
        if m in HEADLINE and verdict:  # fewer than 3 seeds: no tied/below verdict
            out[f"{name} vs best"] = [vs_best(t, m) for _, t in table.iterrows()]
    out["epochs (best/run)"] = table["epochs"]
    out["converged"] = [
        "yes" if c else f"not converged ({u} of {n} seeds)" if n > 1 else "not converged"
        for c, u, n in zip(table["converged"], table["unconverged"], table["seeds"])
    ]
    published = PUBLISHED_R1.get(dataset, {})
    if published:
        out["published R@1 (protocol)"] = [
            f"{published[k][0]:.1f} ({published[k][1]})" if k in published else "—"
            for k in table.index
        ]
    out.index.name = "loss"
    return out


def metrics_files(table: pd.DataFrame, folder: str | Path) -> list[Path]:
    """``<folder>/<loss>.json`` with the loss's mean test metrics in percent (2 decimals), one
    file per loss, so that ``dvc metrics show`` reads as the table; other ``.json`` files in the
    folder (losses no longer in the study) are removed."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for loss, row in table.iterrows():
        path = folder / f"{loss}.json"
        path.write_text(json.dumps({m: round(float(row[m]), 2) for m in METRICS}, indent=1))
        written.append(path)
    for stale in set(folder.glob("*.json")) - set(written):
        stale.unlink()
    return written


def write_results(study: StudyResults, out_dir: str | Path, findings: Sequence[str]) -> None:
    """The evaluation's small files under ``out_dir`` (percent): ``table.csv``, ``runs.csv``,
    ``metrics/``, ``findings.json`` (the computed sentences, for the index), and for
    ``dvc plots show`` ``recall_at_1.csv``, ``recall_at_k.csv``, ``val_curves.csv`` (means over
    seeds)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "findings.json").write_text(json.dumps({"sentences": list(findings)}, indent=1))
    study.table.to_csv(out / "table.csv")
    epochs_for_readers(percent(study.runs)).round(4).to_csv(out / "runs.csv", index=False)
    metrics_files(study.table, out / "metrics")
    study.table[["recall@1"]].round(2).reset_index().to_csv(out / "recall_at_1.csv", index=False)
    k = percent(study.recall_at_k).groupby(["loss", "k"], as_index=False, sort=False)["recall"]
    k.mean().round(2).to_csv(out / "recall_at_k.csv", index=False)
    val = percent(study.curves, ["val_map@r"])
    curves = val.groupby(["loss", "epoch"], as_index=False, sort=False)["val_map@r"].mean()
    curves.round(2).to_csv(out / "val_curves.csv", index=False)


def read_table(path: str | Path) -> pd.DataFrame:
    """A ``table.csv`` written by :func:`write_results`, indexed by loss."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run the evaluation first (dvc repro evaluate)")
    table = pd.read_csv(path, index_col="loss")
    bad = [c for c in table.columns if table[c].isna().any()]
    if bad:
        raise ValueError(f"{path}: empty cells in {bad}; rerun the evaluation stage")
    return table


def comparison_frame(
    comparison: pd.DataFrame,
    metric: str,
    *,
    sort: bool = False,
    runs: pd.DataFrame | None = None,
    label: str = "loss",
) -> pd.DataFrame:
    """The same columns from a :func:`percent_comparison` table (an ablation's arms, the
    multi-modal losses): ``best`` marks the reference; ``sort``: best mean first (else the
    table's order); ``runs`` (with ``label`` and ``converged`` columns) adds ``converged``."""
    c = comparison[comparison["metric"] == metric]
    out = pd.DataFrame(
        {
            "method": c["method"].to_numpy(),
            "mean": c["mean"].to_numpy(np.float64),
            "low": c["ci_low"].to_numpy(np.float64),
            "high": c["ci_high"].to_numpy(np.float64),
            "tied": c["tied"].astype(bool).to_numpy(),
            "best": (c["method"] == c["reference"]).to_numpy(),
            # compare's rule (>= 3 seeds); a table from before it has no column: a verdict
            "verdict": c["verdict"].astype(bool).to_numpy() if "verdict" in c.columns else True,
        }
    )
    if runs is not None:
        ok = runs.groupby(label)["converged"].agg(lambda v: bool(v.astype(bool).all()))
        out["converged"] = out["method"].map(ok).fillna(True).astype(bool)
    return out.sort_values("mean", ascending=False, kind="stable") if sort else out


def percent_comparison(comparison: pd.DataFrame) -> pd.DataFrame:
    """A ``compare`` table with its metric values and differences in percent (points)."""
    cols = ["mean", "ci_low", "ci_high", "seed_ci", "diff", "diff_low", "diff_high"]
    return percent(comparison, [c for c in cols if c in comparison.columns])


def headline_frame(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """``method, mean, low, high, tied, best, verdict, converged`` of one headline metric
    (percent), the input of :func:`dmlstudy.plots.interval_plot`; ``verdict`` False (fewer than
    3 seeds: no ``<metric>_tied`` column) draws no tied/below marker."""
    verdict = f"{metric}_tied" in table.columns
    return pd.DataFrame(
        {
            "method": table.index,
            "mean": table[metric].to_numpy(np.float64),
            "low": table[f"{metric}_low"].to_numpy(np.float64),
            "high": table[f"{metric}_high"].to_numpy(np.float64),
            "tied": table[f"{metric}_tied"].astype(bool).to_numpy() if verdict else False,
            "best": table[f"{metric}_best"].astype(bool).to_numpy(),
            "verdict": verdict,
            "converged": table["converged"].astype(bool).to_numpy(),
        }
    )
