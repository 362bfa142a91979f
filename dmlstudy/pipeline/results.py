"""Collect training runs into tables: per-run test metrics, mean ± 95% CI over seeds, Recall@K
curves, per-epoch histories, and the published reference numbers shown beside them.

>>> runs = pd.DataFrame({"loss": ["a", "a", "b"], "seed": [0, 1, 0],
...                      "recall@1": [0.5, 0.7, 0.4], "map@r": [0.2, 0.3, 0.1]})
>>> s = summarize(runs, metrics=("recall@1", "map@r"))
>>> s.index.tolist(), round(float(s.loc["a", "recall@1"]), 3), int(s.loc["a", "seeds"])
(['a', 'b'], 0.6, 2)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dmlstudy.evaluation import evaluate, mean_ci, nearest_neighbors
from dmlstudy.pipeline.runs import run_path
from dmlstudy.training.outputs import history_frame

METRICS = ("recall@1", "recall@2", "recall@4", "recall@8", "map@r", "r_precision", "nmi")

#: Published Recall@1 (%) with ResNet-50 / 512-d unless noted (docs/losses.md, protocol facts).
#: Only for orientation: other backbones, image sizes and (for Proxy-Anchor) test-set epoch picking.
PUBLISHED_R1: dict[str, dict[str, tuple[float, str]]] = {
    "cub200": {
        "proxy_anchor": (69.9, "Kim et al. 2020, R50/512"),
        "proxy_nca_pp": (72.2, "Teh et al. 2020, R50/2048, larger images"),
        "language": (71.4, "Roth et al. 2022, R50"),
        "multi_similarity": (65.7, "Wang et al. 2019, BN-Inception/512"),
    },
    "cars196": {
        "proxy_anchor": (87.7, "Kim et al. 2020, R50/512"),
        "proxy_nca_pp": (90.1, "Teh et al. 2020, R50/2048, larger images"),
        "language": (90.2, "Roth et al. 2022, R50"),
    },
    "sop": {
        "proxy_nca_pp": (81.4, "Teh et al. 2020, R50/2048, larger images"),
        "language": (81.3, "Roth et al. 2022, R50"),
    },
}


def load_run(run_dir: str | Path) -> dict[str, Any]:
    """``metrics.json`` of one run; a missing file raises naming the stage that makes it."""
    path = Path(run_dir) / "metrics.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run its training first (dvc repro train@...)")
    return json.loads(path.read_text())


def collect_runs(
    runs_dir: str | Path, losses: Sequence[str], seeds: Sequence[int], split: str = "test"
) -> pd.DataFrame:
    """One row per (loss, seed): the ``split`` metrics of the selected epoch plus run facts."""
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


def display_table(
    summary: pd.DataFrame, dataset: str, metrics: Sequence[str] = METRICS
) -> pd.DataFrame:
    """Percent strings ``mean ± ci`` per metric, plus the published R@1 where one exists."""
    out = pd.DataFrame(index=summary.index)
    for m in metrics:
        ci = summary[f"{m}_ci"]
        out[m] = [
            f"{100 * v:.1f}" + ("" if np.isnan(c) else f" ± {100 * c:.1f}")
            for v, c in zip(summary[m], ci)
        ]
    published = PUBLISHED_R1.get(dataset, {})
    if published:
        out["published R@1"] = [
            f"{published[k][0]:.1f} ({published[k][1]})" if k in published else ""
            for k in summary.index
        ]
    return out


def metrics_json(
    summary: pd.DataFrame, metrics: Sequence[str] = METRICS
) -> dict[str, dict[str, float]]:
    """``{loss: {metric: mean}}`` for ``dvc metrics show`` (CI half-widths as ``<metric>_ci``)."""
    out: dict[str, dict[str, float]] = {}
    for loss, row in summary.iterrows():
        out[str(loss)] = {m: round(float(row[m]), 5) for m in metrics}
        out[str(loss)].update(
            {
                f"{m}_ci": round(float(row[f"{m}_ci"]), 5)
                for m in metrics
                if not np.isnan(row[f"{m}_ci"])
            }
        )
    return out


def load_embeddings(run_dir: str | Path, split: str = "test") -> dict[str, np.ndarray]:
    """Arrays of ``embeddings_<split>.npz`` (embeddings, labels, coarse_labels, is_query, …)."""
    with np.load(Path(run_dir) / f"embeddings_{split}.npz") as f:
        return {k: f[k] for k in f.files}


def _query_gallery(e: dict[str, np.ndarray]) -> dict[str, Any]:
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


def recall_curves(
    runs_dir: str | Path,
    losses: Sequence[str],
    seeds: Sequence[int],
    ks: Sequence[int] = (1, 2, 4, 8, 16, 32),
) -> pd.DataFrame:
    """Long table ``loss, seed, k, recall`` on the test embeddings, each loss with its metric."""
    rows = []
    for loss in losses:
        for seed in seeds:
            run = run_path(runs_dir, loss, seed)
            metric = load_run(run)["metric"]
            res = evaluate(
                **_query_gallery(load_embeddings(run)), metric=metric, recall_at=ks, with_nmi=False
            )
            rows += [{"loss": loss, "seed": seed, "k": k, "recall": res[f"recall@{k}"]} for k in ks]
    return pd.DataFrame(rows)


def gallery_neighbors(
    run_dir: str | Path, queries: np.ndarray, k: int = 5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Retrieval results for galleries: for query positions ``queries`` (into the test
    embeddings, which must be queries), the prepared-dataset image rows of the queries (Q,), of
    their top-``k`` neighbours (Q×k), and hit flags (Q×k). A query never retrieves itself."""
    e = load_embeddings(run_dir)
    metric = load_run(run_dir)["metric"]
    n = len(e["labels"])
    q = e.get("is_query", np.ones(n, bool))
    g = e.get("is_gallery", np.ones(n, bool))
    queries = np.asarray(queries)
    if not q[queries].all():
        raise ValueError("gallery_neighbors: every position in queries must be a query image")
    if (
        q.all() and g.all()
    ):  # query-is-gallery: the queries' top k+1 over everything, minus themselves
        nb = nearest_neighbors(
            e["embeddings"][queries],
            e["labels"][queries],
            k + 1,
            gallery_embeddings=e["embeddings"],
            gallery_labels=e["labels"],
            metric=metric,
        )
        keep = nb.indices != queries[:, None]
        idx = np.stack([row[m][:k] for row, m in zip(nb.indices, keep)])
        hits = np.stack([row[m][:k] for row, m in zip(nb.hits, keep)])
        return e["rows"][queries], e["rows"][idx], hits
    gal = np.flatnonzero(g)
    nb = nearest_neighbors(
        e["embeddings"][queries],
        e["labels"][queries],
        k,
        gallery_embeddings=e["embeddings"][gal],
        gallery_labels=e["labels"][gal],
        metric=metric,
    )
    return e["rows"][queries], e["rows"][gal[nb.indices]], nb.hits


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


def departures(settings: dict[str, dict[str, Any]], shared: dict[str, Any]) -> pd.DataFrame:
    """What each loss ran with beyond the shared protocol: loss hyper-parameters that differ from
    the published defaults (``dmlstudy.losses.loss_hyperparameters``) and training settings that
    differ from ``shared`` (the dataset's protocol, ``runs.train_overrides(config, dataset)``; a
    key it lacks is compared with the TrainSettings default). ``settings`` maps loss → its run's
    ``metrics.json["settings"]``.

    >>> base = {"loss_params": {"margin": 0.1, "miner": "all"}, "pooling": "avg", "lr": 0.001}
    >>> departures({"triplet": base,
    ...             "rsw": {**base, "loss_params": {"alpha": 28.4}, "pooling": "avgmax"}},
    ...            shared={"lr": 0.001}).values.tolist()
    [['rsw', 'train', 'pooling', 'avg', 'avgmax']]
    """
    from dmlstudy.losses import loss_hyperparameters
    from dmlstudy.training.settings import TrainSettings

    ignored = {
        "loss",
        "loss_params",
        "out_dir",
        "prepared_dir",
        "seed",
        "label_level",
        "evaluate_test",
    }
    protocol = {k: f.default for k, f in TrainSettings.model_fields.items() if not f.is_required()}
    protocol.update(shared)
    rows = []
    for loss, s in settings.items():
        published = loss_hyperparameters(loss)
        for key, value in s["loss_params"].items():
            default = published.get(key)
            default = list(default) if isinstance(default, tuple) else default
            if value is not None and value != default:
                rows.append((loss, "loss", key, default, value))
        for key, value in s.items():
            if key in ignored or key not in protocol:
                continue
            expected = protocol[key]
            expected = list(expected) if isinstance(expected, tuple) else expected
            if value != expected:
                rows.append((loss, "train", key, expected, value))
    return pd.DataFrame(rows, columns=["loss", "kind", "setting", "published / shared", "used"])
