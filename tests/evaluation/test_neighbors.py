"""nearest_neighbors: per-query indices, distances and hit flags for retrieval galleries."""

from __future__ import annotations

import numpy as np
import pytest

from dmlstudy.evaluation import nearest_neighbors


def test_nearest_neighbors_hits():
    x = np.array([[0.0], [0.2], [5.0], [5.1], [0.1]])
    labels = np.array([0, 0, 1, 1, 1])
    nb = nearest_neighbors(x, labels, 2, metric="euclidean")
    assert nb.indices.tolist() == [[4, 1], [4, 0], [3, 1], [2, 1], [0, 1]]
    assert nb.hits.tolist() == [
        [False, True],
        [False, True],
        [True, False],
        [True, False],
        [False, False],
    ]
    np.testing.assert_allclose(nb.distances[0], [0.1, 0.2], rtol=1e-6)
    nb2 = nearest_neighbors(
        x[:2],
        labels[:2],
        1,
        gallery_embeddings=x[2:],
        gallery_labels=labels[2:],
        metric="euclidean",
    )
    assert nb2.indices[:, 0].tolist() == [2, 2] and nb2.hits[:, 0].tolist() == [False, False]


def test_bad_inputs():
    x = np.eye(3)
    with pytest.raises(ValueError, match="both gallery_embeddings and gallery_labels"):
        nearest_neighbors(x, np.arange(3), 1, gallery_embeddings=x)
    with pytest.raises(ValueError, match="same length"):
        nearest_neighbors(x, np.arange(2), 1)
