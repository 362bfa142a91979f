"""Result tables from run folders (synthetic runs; metrics checked against independent math)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dmlstudy.pipeline import results as R
from dmlstudy.pipeline.runs import run_path


def _fake_run(root, loss, seed, r1, metric="cosine"):
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


def test_collect_summarize_and_percent(tmp_path):
    for seed, r1 in enumerate([0.5, 0.6, 0.7]):
        _fake_run(tmp_path, "a", seed, r1)
        _fake_run(tmp_path, "b", seed, r1 + 0.2)
    runs = R.collect_runs(tmp_path, ["a", "b"], [0, 1, 2])
    assert len(runs) == 6
    s = R.summarize(runs)
    assert s.index.tolist() == ["b", "a"]  # sorted best first
    # t(0.975, 2) * std([.5,.6,.7], ddof=1) / sqrt(3) = 4.3027 * 0.1 / 1.732
    assert s.loc["a", "recall@1"] == pytest.approx(0.6) and s.loc[
        "a", "recall@1_ci"
    ] == pytest.approx(0.24841, abs=1e-4)
    assert R.percent(runs)["recall@1"].tolist() == pytest.approx([50, 60, 70, 70, 80, 90])
    hist = R.histories(tmp_path, ["a"], [0])
    assert hist["val_map@r"].tolist() == [0.1, 0.2] and set(hist["loss"]) == {"a"}


def test_missing_run_names_the_stage(tmp_path):
    with pytest.raises(FileNotFoundError, match="dvc repro train"):
        R.collect_runs(tmp_path, ["a"], [0])
