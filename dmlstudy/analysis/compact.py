"""A run's compact results: the few hundred kilobytes that recompute every table and test.

A run folder holds checkpoints and embeddings (megabytes; never committed). The paper-grade
study commits, per finished run, a *compact* folder instead:

- ``metrics.json`` — the run's own (settings, code/data fingerprints, val/test metrics of the
  selected epoch, the per-epoch history: the validation curve and the plateau rule's decisions);
- ``per_query_test.npz`` — per test query with a relevant item: its class, Recall@1 hit, AP@R
  and R-Precision at the fine label level (and, where the run has coarse labels, the same at
  the coarse level): what the class bootstrap and the seeds × classes test read;
- ``recall_at_k.csv`` — test Recall@K for K = 1 … 32 (the recall curves; K up to the gallery).

Every reader of run folders (:func:`dmlstudy.analysis.compare.per_query`,
:func:`dmlstudy.analysis.results.recall_curves`, ``collect_runs``, the convergence curves) reads
a compact folder as it reads a run folder, so a fresh clone recomputes the study's tables from
the committed compact folders without retraining. :func:`is_current` says whether a committed
compact folder already holds the run a stage is asked for (same settings, same code and data
fingerprints): the paper-grade study then skips the training, which is how it resumes in a fresh
clone.

>>> sorted(COMPACT_FILES)
['metrics.json', 'per_query_test.npz', 'recall_at_k.csv']
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dmlstudy.analysis.results import RECALL_FILE, RECALL_KS, query_gallery
from dmlstudy.evaluation import evaluate, per_query_metrics
from dmlstudy.training.outputs import load_embeddings
from dmlstudy.training.rundir import run_diff
from dmlstudy.training.settings import TrainSettings

PER_QUERY_FILE = "per_query_test.npz"
COMPACT_FILES = ("metrics.json", PER_QUERY_FILE, RECALL_FILE)
#: per-query arrays (fractions) kept at each label level
PER_QUERY_METRICS = ("recall@1", "map@r", "r_precision")


def per_query_from_embeddings(
    e: dict[str, np.ndarray], metric: str, level: str = "fine"
) -> dict[str, np.ndarray]:
    """Per-query test metrics from a run's test arrays at label ``level`` (queries against the
    gallery where the split has them, else everything against everything)."""
    labels = e["labels"] if level == "fine" else e["coarse_labels"]
    q = e.get("is_query", np.ones(len(labels), bool))
    g = e.get("is_gallery", np.ones(len(labels), bool))
    if q.all() and g.all():
        return per_query_metrics(e["embeddings"], labels, metric=metric)
    return per_query_metrics(
        e["embeddings"][q],
        labels[q],
        gallery_embeddings=e["embeddings"][g],
        gallery_labels=labels[g],
        metric=metric,
    )


def load_per_query(folder: str | Path, level: str = "fine") -> dict[str, np.ndarray]:
    """The per-query arrays of a compact folder at ``level`` (``labels`` and
    :data:`PER_QUERY_METRICS`, float64); a level the run lacks raises naming it."""
    with np.load(Path(folder) / PER_QUERY_FILE) as f:
        if f"{level}/labels" not in f.files:
            raise KeyError(f"{folder}/{PER_QUERY_FILE} has no {level}-level queries")
        out = {"labels": f[f"{level}/labels"]}
        out.update({m: f[f"{level}/{m}"].astype(np.float64) for m in PER_QUERY_METRICS})
    return out


def export(run_dir: str | Path, dest: str | Path) -> Path:
    """Write the compact folder of a finished run (``metrics.json`` with test metrics and
    ``embeddings_test.npz``) to ``dest``, replacing what was there; returns ``dest``."""
    run_dir, dest = Path(run_dir), Path(dest)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    if "test" not in metrics:
        raise ValueError(
            f"{run_dir} was trained with evaluate_test=False: a compact result needs the test "
            "split (train it with evaluate_test: true)"
        )
    e = load_embeddings(run_dir)
    arrays: dict[str, np.ndarray] = {}
    levels = ["fine"] + (["coarse"] if "coarse_labels" in e else [])
    for level in levels:
        pq = per_query_from_embeddings(e, metrics["metric"], level)
        arrays[f"{level}/labels"] = pq["labels"].astype(np.int32)
        arrays[f"{level}/recall@1"] = pq["recall@1"].astype(np.uint8)
        for m in PER_QUERY_METRICS[1:]:
            arrays[f"{level}/{m}"] = pq[m].astype(np.float32)
    qg = query_gallery(e)
    n = len(qg["gallery_labels"]) if "gallery_labels" in qg else len(qg["labels"]) - 1
    ks = [k for k in RECALL_KS if k <= n]  # a tiny test split has fewer neighbours than 32
    res = evaluate(**qg, metric=metrics["metric"], recall_at=ks, with_nmi=False)
    recall = pd.DataFrame({"k": ks, "recall": [res[f"recall@{k}"] for k in ks]})
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shutil.copy2(run_dir / "metrics.json", tmp / "metrics.json")
    np.savez_compressed(tmp / PER_QUERY_FILE, **arrays)
    recall.to_csv(tmp / RECALL_FILE, index=False)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)  # all files or none: an interrupted export leaves no half folder
    return dest


def is_complete(folder: str | Path) -> bool:
    """Whether ``folder`` holds every file of a compact folder (an export writes all or none)."""
    return all((Path(folder) / f).is_file() for f in COMPACT_FILES)


def is_current(dest: str | Path, settings: TrainSettings, inputs: dict[str, str]) -> bool:
    """Whether ``dest`` is the complete compact folder of the run ``settings`` asks for: every
    file present, the same settings (paths aside) and the same code and data fingerprints."""
    dest = Path(dest)
    if not is_complete(dest):
        return False
    stored: dict[str, Any] = json.loads((dest / "metrics.json").read_text())
    return not run_diff(stored, settings, inputs)
