"""Retrieval galleries and Recall@K curves from run folders (synthetic runs; neighbours checked
against a brute-force search)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dmlstudy.analysis import results as R
from dmlstudy.plots.gallery import gallery_figures, gallery_neighbors, projection_figure
from dmlstudy.training.outputs import load_embeddings
from dmlstudy.training.rundir import run_path
from tests.support.fake_runs import fake_run


def test_recall_curves_and_gallery_neighbors_match_brute_force(tmp_path):
    emb, labels = fake_run(tmp_path, "a", 0, 0.5)
    curves = R.recall_curves(tmp_path, ["a"], [0], ks=(1, 2))
    x = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    sim = x @ x.T
    np.fill_diagonal(sim, -np.inf)
    order = np.argsort(-sim, axis=1)
    expected_r1 = np.mean(labels[order[:, 0]] == labels)
    assert curves.loc[curves["k"] == 1, "recall"].item() == pytest.approx(expected_r1)
    q_rows, nb_rows, hits = gallery_neighbors(run_path(tmp_path, "a", 0), np.array([0, 7]), k=3)
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
    q_rows, nb_rows, nb_hits = gallery_neighbors(d, qi[:3], k=4)
    assert q_rows.tolist() == (qi[:3] + 500).tolist()
    np.testing.assert_array_equal(nb_rows, gi[order[:3, :4]] + 500)
    np.testing.assert_array_equal(nb_hits, hits[:3, :4])


def test_gallery_neighbors_equal_the_full_search_with_duplicate_images(tmp_path):
    """Galleries search only the shown queries; with exact duplicates (ties with the query
    itself) they must still equal the leave-one-out rows of the all-vs-all search."""
    from dmlstudy.evaluation import nearest_neighbors

    emb, _labels = fake_run(tmp_path, "a", 0, 0.5)
    e = load_embeddings(run_path(tmp_path, "a", 0))
    emb = e["embeddings"].copy()
    emb[1] = emb[0]
    emb[8] = emb[7]  # duplicates of queries 0 and 7
    np.savez(run_path(tmp_path, "a", 0) / "embeddings_test.npz", **{**e, "embeddings": emb})
    full = nearest_neighbors(emb, e["labels"], 4, metric="cosine")
    queries = np.array([0, 1, 7, 8, 3])
    _, nb_rows, hits = gallery_neighbors(run_path(tmp_path, "a", 0), queries, k=4)
    np.testing.assert_array_equal(nb_rows, e["rows"][full.indices[queries]])
    np.testing.assert_array_equal(hits, full.hits[queries])


def test_gallery_figures_show_one_row_per_loss_and_the_same_queries(tmp_path):
    for loss in ("a", "b"):
        fake_run(tmp_path, loss, 0, 0.5)
    images = np.zeros((200, 8, 8, 1), np.uint8)
    names = [f"class{i}" for i in range(200)]
    figs = gallery_figures(tmp_path, ["a", "b"], 0, images, names, n_queries=2, k=3)
    assert len(figs) == 2
    assert all(len(f.axes) == 2 * (1 + 3) for f in figs)  # 2 losses x (query + 3 neighbours)
    assert figs[0]._suptitle.get_text().startswith("query 1: class1")


def test_projection_figure_colours_by_coarse_label_and_by_fine_inside_one(tmp_path):
    fake_run(tmp_path, "a", 0, 0.5)
    fig = projection_figure(run_path(tmp_path, "a", 0), "a", method="pca")
    assert "coarse labels" in fig.axes[0].get_title()
    one = projection_figure(run_path(tmp_path, "a", 0), "a", method="pca", largest_coarse=True)
    assert len(one.axes[0].collections[0].get_offsets()) == 8  # one coarse class: 2 x 4 images
