"""A synthetic run folder (test embeddings and metrics.json) for the results and gallery tests."""

from __future__ import annotations

import json

import numpy as np

from dmlstudy.analysis import results as R
from dmlstudy.training.rundir import run_path


def fake_run(root, loss, seed, r1, metric="cosine"):
    d = run_path(root, loss, seed)
    d.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(5), 4)
    emb = np.eye(5)[labels] + 0.3 * rng.normal(size=(20, 5))
    np.savez(
        d / "embeddings_test.npz",
        embeddings=emb.astype(np.float32),
        labels=labels,
        coarse_labels=labels // 2,
        is_query=np.ones(20, bool),
        is_gallery=np.ones(20, bool),
        rows=np.arange(100, 120),
    )
    metrics = {
        "test": {m: r1 for m in R.METRICS},
        "best_epoch": 1,
        "train_seconds": 2.0,
        "train_images_per_s": 9.0,
        "metric": metric,
        "history": [
            {"epoch": 0, "loss": 1.0, "images_per_s": 5.0, "val": {"map@r": 0.1}},
            {"epoch": 1, "loss": 0.5, "images_per_s": 5.0, "val": {"map@r": 0.2}},
        ],
    }
    (d / "metrics.json").write_text(json.dumps(metrics))
    return emb, labels
