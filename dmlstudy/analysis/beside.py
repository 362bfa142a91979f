"""The default study's one-seed numbers beside the committed paper-grade study's (issue #16).

The default ``dvc repro`` trains ``study.seeds`` (one seed): its intervals are over test classes
only and it draws no verdict between losses. The paper-grade study (``make paper``,
``studies/paper/dvc.yaml``) commits its table under ``studies/paper/results/<dataset>/`` (seeds ×
classes intervals, tied/below verdicts) and each run's compact folder under
``studies/paper/results/runs/<profile>/<dataset>/<loss>/seed<k>/``. This puts them side by side, per
loss of the default study: its own value, the paper-grade mean with its interval and verdict,
and the paper-grade run of the same seed — with the same settings, code and data it is the same
run, so the difference says whether this machine reproduced it.

The paper-grade files are read as committed files, not as DVC dependencies: DVC joins every
dvc.yaml into one graph, so a stage of the default pipeline that depended on them would make
``dvc repro`` run the paper-grade study. The page therefore names the version it read (the
table's git blob id, what ``git hash-object`` prints).

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
>>> _ = p.write_bytes(b"hello\\n")
>>> git_blob_id(p)  # git hash-object of the same bytes
'ce013625030ba8dba906f756967f9e9ca394464a'
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from dmlstudy.training.outputs import load_run
from dmlstudy.training.rundir import run_diff, run_path
from dmlstudy.training.settings import TrainSettings

#: The metrics put side by side (percent, as the tables).
METRICS = ("map@r", "recall@1")
#: Seeds a verdict needs (as the study's own tables: fewer is "one training run" territory).
VERDICT_SEEDS = 3


@dataclass(frozen=True)
class Beside:
    """``table``: one row per loss of the default study; ``sentences``: what it shows;
    ``source``: the paper-grade table read ("" when none is committed)."""

    table: pd.DataFrame
    sentences: list[str] = field(default_factory=list)
    source: str = ""


def git_blob_id(path: str | Path) -> str:
    """The git blob id of a file's bytes (``git hash-object``), without calling git."""
    data = Path(path).read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _verdict(row: pd.Series, metric: str, seeds: int) -> str:
    if seeds < VERDICT_SEEDS:
        return f"none ({seeds} seed{'s' if seeds != 1 else ''})"
    if bool(row.get(f"{metric}_best", False)):
        return "best"
    return "tied with the best" if bool(row.get(f"{metric}_tied", False)) else "below the best"


def _same_seed(paper_run: Path, this_run: Path) -> tuple[float, str]:
    """(the paper-grade run's test MAP@R in percent, what differs from this run's settings,
    code and data: "" when it is the same run) — NaN and a reason when it is not committed."""
    if not (paper_run / "metrics.json").is_file():
        return np.nan, "not committed"
    paper = load_run(paper_run)
    mine = load_run(this_run)
    diff = run_diff(paper, TrainSettings(**mine["settings"]), mine.get("inputs") or {})
    return 100 * float(paper["test"]["map@r"]), ", ".join(diff)


def beside_paper_grade(
    table: pd.DataFrame,
    *,
    runs_dir: str | Path,
    seed: int,
    paper_root: str | Path,
    dataset: str,
    profile: str = "paper",
) -> Beside:
    """The comparison for the default study's ``table`` (``table.csv``'s frame, percent, indexed
    by loss; its runs in ``runs_dir``, ``seed`` the seed shown) against the paper-grade study
    committed under ``paper_root`` (``studies/paper/results``)."""
    losses = list(table.index)
    mine = table[list(METRICS)].rename(columns=lambda m: f"{m}, this run (seed {seed})")
    paper_table = Path(paper_root) / dataset / "table.csv"
    if not paper_table.is_file():
        return Beside(
            mine,
            [
                f"The paper-grade study of {dataset} is not committed yet ({paper_table} is "
                f"missing; `make paper` trains it). The numbers above are one training run each "
                f"(seed {seed}), with intervals over test classes only: they say how these "
                "trained weights do on another draw of test classes, not whether one loss beats "
                "another, and no verdict between losses is drawn from them."
            ],
        )
    source = f"{paper_table} (git blob {git_blob_id(paper_table)[:12]})"
    paper = pd.read_csv(paper_table, index_col="loss")
    status_file = paper_table.with_name("status.json")
    status = json.loads(status_file.read_text()) if status_file.is_file() else {}
    out = mine.copy()
    got = paper.reindex(losses)
    seeds = got["seeds"].fillna(0).astype(int)
    for m in METRICS:
        out[f"{m}, paper-grade mean"] = got[m]
        out[f"{m}, paper-grade 95% CI"] = [
            f"[{lo:.1f}, {hi:.1f}]" if pd.notna(lo) else ""
            for lo, hi in zip(got[f"{m}_low"], got[f"{m}_high"])
        ]
        out[f"{m}, paper-grade verdict"] = [
            _verdict(row, m, n) if loss in paper.index else "not in the paper-grade study"
            for (loss, row), n in zip(got.iterrows(), seeds)
        ]
    same = {
        loss: _same_seed(
            run_path(Path(paper_root) / "runs" / profile / dataset, loss, seed),
            run_path(runs_dir, loss, seed),
        )
        for loss in losses
    }
    out[f"map@r, paper-grade seed {seed}"] = [same[loss][0] for loss in losses]
    out["same run as the paper-grade one?"] = [
        "yes" if not same[loss][1] else f"no: {same[loss][1]}" for loss in losses
    ]
    out["difference (points)"] = (
        out[f"map@r, this run (seed {seed})"] - out[f"map@r, paper-grade seed {seed}"]
    )
    sentences = _sentences(out, status, seed, source)
    left_out = [loss for loss in paper.index if loss not in losses]
    if left_out:
        sentences.append(
            f"The paper-grade study also compares {len(left_out)} loss(es) this quick study "
            f"leaves out ({', '.join(left_out)}); their numbers and verdicts are on its page "
            f"(reports/paper/{dataset}.html)."
        )
    return Beside(out, sentences, source)


def _sentences(out: pd.DataFrame, status: dict, seed: int, source: str) -> list[str]:
    done = status.get("done", {}).get("main seeds")
    pending = status.get("pending", {})
    text = [
        f"Beside the committed paper-grade study ({source}; main seeds done: "
        f"{done if done is not None else 'not recorded'}"
        + (f"; pending: {', '.join(pending)}" if pending else "")
        + "): its verdicts are the study's; this page's single seed carries none."
    ]
    common = out.dropna(subset=["map@r, paper-grade mean"])
    if len(common) >= 3:
        tau = stats.kendalltau(
            common[f"map@r, this run (seed {seed})"], common["map@r, paper-grade mean"]
        ).statistic
        text.append(
            f"This run's MAP@R ranks the {len(common)} losses as the paper-grade means do up "
            f"to Kendall τ = {tau:.2f} (1: the same order)."
        )
    same = out[out["same run as the paper-grade one?"] == "yes"]
    if len(same):
        worst = same["difference (points)"].abs().max()
        text.append(
            f"{len(same)} of {len(out)} losses ran with the paper-grade seed-{seed} run's "
            f"settings, code and data; their test MAP@R differs from the committed run by at "
            f"most {worst:.2f} points"
            + (
                " (the same numbers: reproduced)."
                if worst == 0
                else " (not the same numbers: the same seed and inputs can round differently "
                "on another machine's floating-point path; the verdicts rest on the seeds' "
                "spread, not on one run)."
            )
        )
    return text
