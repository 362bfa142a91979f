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


def test_collect_summarize_and_metrics_json(tmp_path):
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
    table = R.display_table(s, "cub200")
    assert table.loc["a", "recall@1"] == "60.0 ± 24.8" and "published R@1" in table
    assert R.metrics_json(s)["b"]["recall@1"] == pytest.approx(0.8)
    hist = R.histories(tmp_path, ["a"], [0])
    assert hist["val_map@r"].tolist() == [0.1, 0.2] and set(hist["loss"]) == {"a"}


def test_missing_run_names_the_stage(tmp_path):
    with pytest.raises(FileNotFoundError, match="dvc repro train"):
        R.collect_runs(tmp_path, ["a"], [0])


def test_recall_curves_and_gallery_neighbors_match_brute_force(tmp_path):
    emb, labels = _fake_run(tmp_path, "a", 0, 0.5)
    curves = R.recall_curves(tmp_path, ["a"], [0], ks=(1, 2))
    x = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    sim = x @ x.T
    np.fill_diagonal(sim, -np.inf)
    order = np.argsort(-sim, axis=1)
    expected_r1 = np.mean(labels[order[:, 0]] == labels)
    assert curves.loc[curves["k"] == 1, "recall"].item() == pytest.approx(expected_r1)
    q_rows, nb_rows, hits = R.gallery_neighbors(run_path(tmp_path, "a", 0), np.array([0, 7]), k=3)
    assert q_rows.tolist() == [100, 107]
    np.testing.assert_array_equal(nb_rows, 100 + order[[0, 7], :3])
    np.testing.assert_array_equal(hits, labels[order[[0, 7], :3]] == labels[[0, 7], None])


def test_euclidean_query_gallery_runs_use_raw_distances(tmp_path):
    """RSW-style run (metric euclidean, unnormalized) in In-Shop mode (disjoint query/gallery):
    Recall@K and gallery neighbours use Euclidean distance on raw embeddings, query → gallery."""
    d = run_path(tmp_path, "rsw", 0)
    d.mkdir(parents=True)
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(6), 6)
    emb = (
        rng.normal(size=(36, 4)) * rng.uniform(0.2, 5.0, size=(36, 1)) + 2.0 * np.eye(4)[labels % 4]
    ).astype(np.float32)
    is_query = np.tile([True, True, False, False, False, False], 6)
    np.savez(
        d / "embeddings_test.npz",
        embeddings=emb,
        labels=labels,
        coarse_labels=labels // 3,
        is_query=is_query,
        is_gallery=~is_query,
        rows=np.arange(36) + 500,
    )
    (d / "metrics.json").write_text(json.dumps({"metric": "euclidean"}))
    qi, gi = np.flatnonzero(is_query), np.flatnonzero(~is_query)
    dist = np.linalg.norm(emb[qi, None] - emb[None, gi], axis=2)
    order = np.argsort(dist, axis=1, kind="stable")
    hits = labels[gi][order] == labels[qi, None]
    curves = R.recall_curves(tmp_path, ["rsw"], [0], ks=(1, 4))
    for k in (1, 4):
        assert curves.loc[curves["k"] == k, "recall"].item() == pytest.approx(
            hits[:, :k].any(axis=1).mean()
        )
    q_rows, nb_rows, nb_hits = R.gallery_neighbors(d, qi[:3], k=4)
    assert q_rows.tolist() == (qi[:3] + 500).tolist()
    np.testing.assert_array_equal(nb_rows, gi[order[:3, :4]] + 500)
    np.testing.assert_array_equal(nb_hits, hits[:3, :4])


def test_departures_list_tuned_loss_values_and_loss_specific_training():
    from dmlstudy.pipeline.results import departures

    run = {
        "loss_params": {},
        "pooling": "avg",
        "layer_norm": False,
        "crop_scale": [0.7, 1.0],
        "lr": 0.001,
    }
    protocol = {
        "crop_scale": (0.7, 1.0),
        "lr": 0.001,
    }  # pooling / layer_norm: TrainSettings defaults
    table = departures(
        {
            "triplet": {**run, "loss_params": {"margin": 0.1, "miner": "all"}},
            "proxy_anchor": {**run, "loss_params": {"alpha": 32.0, "proxy_lr_multiplier": 10.0}},
            "rsw": {**run, "layer_norm": True},
        },
        shared=protocol,
    )
    assert table.values.tolist() == [
        ["proxy_anchor", "loss", "proxy_lr_multiplier", 100.0, 10.0],
        ["rsw", "train", "layer_norm", False, True],
    ]
    # a single loss with its own head is still reported (compared with the protocol, not the others)
    assert departures({"rsw": {**run, "layer_norm": True}}, shared=protocol).values.tolist() == [
        ["rsw", "train", "layer_norm", False, True]
    ]


def test_gallery_neighbors_equal_the_full_search_with_duplicate_images(tmp_path):
    """Galleries search only the shown queries; with exact duplicates (ties with the query
    itself) they must still equal the leave-one-out rows of the all-vs-all search."""
    from dmlstudy.evaluation import nearest_neighbors

    emb, _labels = _fake_run(tmp_path, "a", 0, 0.5)
    e = R.load_embeddings(run_path(tmp_path, "a", 0))
    emb = e["embeddings"].copy()
    emb[1] = emb[0]
    emb[8] = emb[7]  # duplicates of queries 0 and 7
    np.savez(run_path(tmp_path, "a", 0) / "embeddings_test.npz", **{**e, "embeddings": emb})
    full = nearest_neighbors(emb, e["labels"], 4, metric="cosine")
    queries = np.array([0, 1, 7, 8, 3])
    _, nb_rows, hits = R.gallery_neighbors(run_path(tmp_path, "a", 0), queries, k=4)
    np.testing.assert_array_equal(nb_rows, e["rows"][full.indices[queries]])
    np.testing.assert_array_equal(hits, full.hits[queries])
