"""Run inputs (labels per level, evaluation subsets) and outputs (dvclive, final embeddings,
metrics.json) of :func:`dmlstudy.training.train`."""

from __future__ import annotations

import itertools
import json
import platform
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from dmlstudy.evaluation import evaluate
from dmlstudy.training.augment import Preprocess
from dmlstudy.training.checkpoint import atomic_json, atomic_npz, load_checkpoint
from dmlstudy.training.inference import embed_run_rows
from dmlstudy.training.settings import TrainSettings


def train_labels(ds: Any, level: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(rows, contiguous labels 0..C-1, class names) of the train split at ``level``."""
    rows, labels = ds.split("train")
    if level == "fine":
        return np.asarray(rows), np.asarray(labels, dtype=np.int64), list(ds.class_names("train"))
    coarse = np.asarray(ds.coarse_labels("train"))
    if (coarse < 0).any():
        raise ValueError(
            "label_level: coarse needs coarse labels, but this dataset has none (coarse_label -1); "
            "use label_level: fine"
        )
    ids, contiguous = np.unique(coarse, return_inverse=True)
    index = ds.index.iloc[np.asarray(rows)]
    if "coarse_name" in index.columns:
        first = index.groupby("coarse_label")["coarse_name"].first()
        names = [str(first[i]) for i in ids]
    else:
        names = [f"coarse class {i}" for i in ids]
    return np.asarray(rows), contiguous.astype(np.int64), names


def _level_labels(ds: Any, rows: np.ndarray, level: str) -> np.ndarray:
    col = "label" if level == "fine" else "coarse_label"
    return ds.index[col].to_numpy()[rows]


def eval_rows(ds: Any, split: str, s: TrainSettings) -> tuple[np.ndarray, np.ndarray]:
    """Rows and labels (at the training label level) of ``split``, at most ``limit_eval`` images:
    whole classes in a seeded order, so no query loses its positives."""
    rows, _ = ds.split(split)
    rows = np.asarray(rows)
    if len(rows) == 0:
        raise ValueError(
            f"the prepared dataset has no {split!r} images; prepare it with val_fraction > 0"
        )
    if s.limit_eval is not None and len(rows) > s.limit_eval:
        fine = ds.index["label"].to_numpy()[rows]
        classes = np.random.default_rng(s.seed).permutation(np.unique(fine))
        counts = np.array([(fine == c).sum() for c in classes])
        keep = classes[
            : max(2, int(np.searchsorted(np.cumsum(counts), s.limit_eval, side="right")))
        ]
        rows = rows[np.isin(fine, keep)]
    return rows, _level_labels(ds, rows, s.label_level)


def open_live(out_dir: Path, history: list[dict[str, Any]]) -> Any:
    """dvclive logger (never touches git / DVC experiments) holding exactly one row per epoch of
    ``history``: rebuilt from it, so a resumed run never repeats or misses an epoch's row, whatever
    an interrupted run had logged."""
    from dvclive import Live

    shutil.rmtree(out_dir / "dvclive", ignore_errors=True)
    live = Live(
        dir=str(out_dir / "dvclive"), resume=False, save_dvc_exp=False, dvcyaml=None, report=None
    )
    for record in history:
        log_epoch(live, record)
    return live


def log_epoch(live: Any, record: dict[str, Any]) -> None:
    """One epoch's row (``record`` of the checkpoint's history) at step = epoch."""
    live.step = record["epoch"]
    live.log_metric("train/loss", record["loss"])
    live.log_metric("train/images_per_s", record["images_per_s"])
    for name, lr in record["lr"].items():
        live.log_metric(f"lr/{name}", lr)
    for k, v in record.get("val", {}).items():
        live.log_metric(f"val/{k}", v)
    live.next_step()


def _test_metrics(
    emb: np.ndarray, labels: np.ndarray, q: np.ndarray, g: np.ndarray, metric: str, seed: int
) -> dict:
    if q.all() and g.all():
        return evaluate(emb, labels, metric=metric, seed=seed)
    return evaluate(
        emb[q],
        labels[q],
        gallery_embeddings=emb[g],
        gallery_labels=labels[g],
        metric=metric,
        seed=seed,
    )


def finalize(
    s: TrainSettings,
    ds: Any,
    model: torch.nn.Module,
    loss_fn: Any,
    state: dict[str, Any],
    device: torch.device,
    pre: Preprocess,
    inputs: dict[str, str],
) -> dict[str, Any]:
    """Reload best.pt, write embeddings_{val,test}.npz and metrics.json; return the metrics.
    With ``evaluate_test=False`` (tuning) the test split is neither embedded nor scored."""
    best = load_checkpoint(s.out_dir / "best.pt", map_location=device)
    model.load_state_dict(best["model_state"])
    idx = ds.index
    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    for split in ("val", "test") if s.evaluate_test else ("val",):
        rows, labels = eval_rows(ds, split, s)
        emb = embed_run_rows(model, ds.images, pre, rows, s, device)
        q, g = idx["is_query"].to_numpy()[rows], idx["is_gallery"].to_numpy()[rows]
        atomic_npz(
            s.out_dir / f"embeddings_{split}.npz",
            embeddings=emb,
            labels=idx["label"].to_numpy()[rows],
            coarse_labels=idx["coarse_label"].to_numpy()[rows],
            is_query=q,
            is_gallery=g,
            rows=rows,
        )
        if split == "test":
            out["test"] = {
                k: float(v)
                for k, v in _test_metrics(emb, labels, q, g, loss_fn.metric, s.seed).items()
            }
            if s.label_level == "coarse":
                fine = idx["label"].to_numpy()[rows]
                out["test_fine"] = {
                    k: float(v)
                    for k, v in _test_metrics(emb, fine, q, g, loss_fn.metric, s.seed).items()
                }
    metrics = {
        "best_epoch": int(state["best_epoch"]),
        "selected_on": "val map@r",
        "val": best["val"],
        **out,
        "train_seconds": state["train_seconds"],
        "train_images_per_s": state["train_images"] / state["train_seconds"]
        if state["train_seconds"]
        else None,
        "final_embedding_seconds": time.perf_counter() - t0,
        "wall_seconds": state["wall_seconds"] + time.perf_counter() - t0,
        "epochs": s.epochs,
        "epochs_run": int(state["epoch"]) + 1,
        # the plateau rule stopped the run on a flat smoothed curve (stopping.Plateau.converged);
        # False: it ran out of epochs, or has no stopping rule, or ended still rising
        "converged": bool(state.get("plateau", {}).get("converged", False)),
        "metric": loss_fn.metric,
        "device": str(device),
        "torch": torch.__version__,
        "host": platform.node(),
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "settings": s.model_dump(mode="json"),
        "inputs": inputs,
        "divergence": state["divergence"],
        "history": state["history"],
    }
    atomic_json(metrics, s.out_dir / "metrics.json")
    return metrics


def history_frame(history: list[dict[str, Any]]) -> pd.DataFrame:
    """Per-epoch ``metrics.json["history"]`` → columns epoch, train_loss, images_per_s,
    val_<metric>.

    >>> history_frame([{"epoch": 0, "loss": 0.5, "val": {"map@r": 0.2}}]).columns.tolist()
    ['epoch', 'train_loss', 'images_per_s', 'val_map@r']
    """
    rows = []
    for rec in history:
        row = {
            "epoch": rec["epoch"],
            "train_loss": rec["loss"],
            "images_per_s": rec.get("images_per_s"),
        }
        row.update({f"val_{k}": v for k, v in rec.get("val", {}).items()})
        rows.append(row)
    return pd.DataFrame(rows)


def resume_note(history: list[dict[str, Any]]) -> str:
    """The report's line for a run resumed from its checkpoint (each change of ``session`` in
    ``metrics.json["history"]``), with epochs 1-based as the report numbers them; "" for a run
    trained in one go.

    >>> resume_note([{"epoch": 0, "session": 0}, {"epoch": 1, "session": 0}])
    ''
    >>> resume_note([{"epoch": 0, "session": 0}, {"epoch": 1, "session": 1}])[:48]
    'Resumed after epoch 1 from its checkpoint (1-bas'
    """
    after = [
        rec["epoch"]  # 0-based first epoch of the new session = 1-based last epoch before it
        for prev, rec in itertools.pairwise(history)
        if rec.get("session", 0) != prev.get("session", 0)
    ]
    if not after:
        return ""
    epochs = " and after epoch ".join(map(str, after))
    return (
        f"Resumed after epoch {epochs} from its checkpoint (1-based, as the table): a "
        "bit-identical continuation — batches, augmentation, model, optimizer and plateau state "
        "restored, so the result is the one an uninterrupted run gives."
    )


# --- reading a finished run (the analysis, reports and galleries read runs through these) ---


def load_run(run_dir: str | Path) -> dict[str, Any]:
    """``metrics.json`` of one run; a missing file raises naming the stage that makes it."""
    path = Path(run_dir) / "metrics.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run its training first (dvc repro train@...)")
    return json.loads(path.read_text())


def load_embeddings(run_dir: str | Path, split: str = "test") -> dict[str, np.ndarray]:
    """Arrays of ``embeddings_<split>.npz`` (embeddings, labels, coarse_labels, is_query, …)."""
    with np.load(Path(run_dir) / f"embeddings_{split}.npz") as f:
        return {k: f[k] for k in f.files}
