"""Collect training runs into tables: per-run test metrics, mean ± 95% CI over seeds, Recall@K
curves, per-epoch histories, and the published reference numbers shown beside them.

Run folders hold fractions (``metrics.json``); every table a report shows and every file under
``results/`` holds **percent** (:func:`percent`), one unit for all pages.

>>> runs = pd.DataFrame({"loss": ["a", "a", "b"], "seed": [0, 1, 0],
...                      "recall@1": [0.5, 0.7, 0.4], "map@r": [0.2, 0.3, 0.1]})
>>> s = summarize(runs, metrics=("recall@1", "map@r"))
>>> s.index.tolist(), round(float(s.loc["a", "recall@1"]), 3), int(s.loc["a", "seeds"])
(['a', 'b'], 0.6, 2)
>>> percent(runs)["recall@1"].tolist()
[50.0, 70.0, 40.0]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from dmlstudy.evaluation import evaluate, mean_ci
from dmlstudy.training.outputs import history_frame, load_embeddings, load_run
from dmlstudy.training.rundir import run_path

METRICS = ("recall@1", "recall@2", "recall@4", "recall@8", "map@r", "r_precision", "nmi")
#: Short names used in every table and figure.
LABELS = {
    "recall@1": "R@1",
    "recall@2": "R@2",
    "recall@4": "R@4",
    "recall@8": "R@8",
    "recall@16": "R@16",
    "recall@32": "R@32",
    "map@r": "MAP@R",
    "r_precision": "R-Prec",
    "nmi": "NMI",
}
#: Column-name parts of a retrieval metric (fractions in run folders, percent in reports).
_METRIC_WORDS = ("recall", "map@r", "precision", "nmi")

#: The published numbers and protocols (``published.yaml`` beside this module: data, not code).
_PUBLISHED = yaml.safe_load((Path(__file__).with_name("published.yaml")).read_text())
#: Published Recall@1 (%) per dataset and loss: (value, "source, backbone/embedding"); only for
#: orientation (other backbones, image sizes and, for Proxy-Anchor, test-set epoch picking).
PUBLISHED_R1: dict[str, dict[str, tuple[float, str]]] = {
    dataset: {loss: (float(v[0]), str(v[1])) for loss, v in numbers.items()}
    for dataset, numbers in _PUBLISHED["recall_at_1"].items()
}
#: What to say where no published number stands beside ours.
NO_PUBLISHED: dict[str, str] = dict(_PUBLISHED["none"])
#: The official evaluation protocol of each photo dataset, which published numbers and ours share
#: (splits and counts as in dmlstudy/data/<dataset>.py).
PROTOCOL: dict[str, str] = dict(_PUBLISHED["protocol"])


def published_note(dataset: str) -> str:
    """The evaluation protocol of ``dataset`` (photo datasets) and one sentence on its published
    numbers (their own protocols, or that none exist).

    >>> published_note("omniglot").startswith("There is no published retrieval number")
    True
    >>> "query to gallery" in published_note("inshop")
    True
    """
    protocol = f"{PROTOCOL[dataset]} " if dataset in PROTOCOL else ""
    if dataset in PUBLISHED_R1:
        return protocol + (
            "Published Recall@1 is shown beside ours for orientation only: each comes with its "
            "own protocol (named beside it: backbone, embedding size, image size), and "
            "Proxy-Anchor picked its epoch on the test set."
        )
    return protocol + NO_PUBLISHED.get(
        dataset, f"No published retrieval number for {dataset} is collected in this study."
    )


def is_metric_column(name: str) -> bool:
    """Whether column ``name`` holds a retrieval metric or an interval of one (scaled to percent).

    >>> [is_metric_column(c) for c in ("recall@1", "fine_map@r", "map@r_low", "seed", "p_holm",
    ...                                 "within_coarse_nmi_classes")]
    [True, True, True, False, False, False]
    """
    return any(w in name for w in _METRIC_WORDS) and not name.endswith("_classes")


def percent(frame: pd.DataFrame, columns: Iterable[str] | None = None) -> pd.DataFrame:
    """A copy with the metric columns (``columns``, default: every :func:`is_metric_column`
    column that is numeric) multiplied by 100."""
    out = frame.copy()
    names = [c for c in out.columns if is_metric_column(str(c))] if columns is None else columns
    for c in names:
        if pd.api.types.is_numeric_dtype(out[c]) and not pd.api.types.is_bool_dtype(out[c]):
            out[c] = out[c] * 100.0
    return out


def epochs_for_readers(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy whose 0-based ``best_epoch`` (the trainer's count, as in metrics.json) is the 1-based
    ``selected_epoch`` that every page and file a reader opens uses (val_curves.csv, "epochs
    18/20").

    >>> epochs_for_readers(pd.DataFrame({"best_epoch": [17], "epochs_run": [20]}))
       selected_epoch  epochs_run
    0              18          20
    """
    if "best_epoch" not in frame.columns:
        return frame.copy()
    return frame.assign(best_epoch=frame["best_epoch"] + 1).rename(
        columns={"best_epoch": "selected_epoch"}
    )


def collect_runs(
    runs_dir: str | Path, losses: Sequence[str], seeds: Sequence[int], split: str = "test"
) -> pd.DataFrame:
    """One row per (loss, seed): the ``split`` metrics of the selected epoch plus run facts
    (fractions, as in the run folders)."""
    rows = []
    for loss in losses:
        for seed in seeds:
            m = load_run(run_path(runs_dir, loss, seed))
            rows.append(
                {
                    "loss": loss,
                    "seed": seed,
                    **m[split],
                    "best_epoch": m["best_epoch"],
                    "epochs_run": m.get("epochs_run", len(m.get("history", [])) or None),
                    "converged": bool(m.get("converged", False)),
                    "train_seconds": m["train_seconds"],
                    "images_per_s": m["train_images_per_s"],
                    "metric": m["metric"],
                }
            )
    return pd.DataFrame(rows)


def summarize(
    runs: pd.DataFrame,
    metrics: Sequence[str] = METRICS,
    sort_by: str | None = None,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Per loss: mean and CI half-width (``<metric>_ci``, Student t over seeds; NaN for one seed),
    sorted by ``sort_by`` (default the first metric), best first."""
    out = {}
    for loss, group in runs.groupby("loss", sort=False):
        row: dict[str, Any] = {"seeds": len(group)}
        for m in metrics:
            row[m], row[f"{m}_ci"] = mean_ci(group[m].to_numpy(), confidence)
        out[loss] = row
    table = pd.DataFrame.from_dict(out, orient="index")
    table.index.name = "loss"
    return table.sort_values(sort_by or metrics[0], ascending=False)


def query_gallery(e: dict[str, np.ndarray]) -> dict[str, Any]:
    """Keyword arguments of :func:`dmlstudy.evaluation.evaluate` for one run's test arrays: the
    queries against the gallery (or everything against everything where they coincide)."""
    q = e.get("is_query", np.ones(len(e["labels"]), bool))
    g = e.get("is_gallery", np.ones(len(e["labels"]), bool))
    if q.all() and g.all():
        return {"embeddings": e["embeddings"], "labels": e["labels"]}
    return {
        "embeddings": e["embeddings"][q],
        "labels": e["labels"][q],
        "gallery_embeddings": e["embeddings"][g],
        "gallery_labels": e["labels"][g],
    }


#: K of the recall curves, and the file a compact run folder keeps them in (analysis/compact.py)
RECALL_KS = (1, 2, 4, 8, 16, 32)
RECALL_FILE = "recall_at_k.csv"


def recall_curves(
    runs_dir: str | Path,
    losses: Sequence[str],
    seeds: Sequence[int],
    ks: Sequence[int] = RECALL_KS,
) -> pd.DataFrame:
    """Long table ``loss, seed, k, recall`` on the test embeddings, each loss with its metric (a
    compact run folder, which has no embeddings: its ``recall_at_k.csv``)."""
    rows = []
    for loss in losses:
        for seed in seeds:
            run = run_path(runs_dir, loss, seed)
            if not (run / "embeddings_test.npz").is_file() and (run / RECALL_FILE).is_file():
                kept = pd.read_csv(run / RECALL_FILE).set_index("k")["recall"]
                missing = sorted(set(ks) - set(kept.index))
                if missing:
                    raise ValueError(f"{run / RECALL_FILE} has no recall@K for K = {missing}")
                rows += [{"loss": loss, "seed": seed, "k": k, "recall": kept[k]} for k in ks]
                continue
            metric = load_run(run)["metric"]
            res = evaluate(
                **query_gallery(load_embeddings(run)), metric=metric, recall_at=ks, with_nmi=False
            )
            rows += [{"loss": loss, "seed": seed, "k": k, "recall": res[f"recall@{k}"]} for k in ks]
    return pd.DataFrame(rows)


def histories(runs_dir: str | Path, losses: Sequence[str], seeds: Sequence[int]) -> pd.DataFrame:
    """``history_frame`` of every run, with ``loss`` and ``seed`` columns."""
    frames = [
        history_frame(load_run(run_path(runs_dir, loss, seed))["history"]).assign(
            loss=loss, seed=seed
        )
        for loss in losses
        for seed in seeds
    ]
    return pd.concat(frames, ignore_index=True)
