"""fine_structure_metrics: fine-label retrieval + within-coarse NMI of coarse-trained embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from dmlstudy.evaluation import evaluate, fine_structure_metrics, nmi


def nested(rng, n_coarse=4, fine_per=2, per_fine=10, fine_spread=1.0, noise=0.05):
    fine = np.repeat(np.arange(n_coarse * fine_per), per_fine)
    coarse = fine // fine_per
    coarse_centers = rng.normal(size=(n_coarse, 16)) * 10
    fine_offsets = rng.normal(size=(n_coarse * fine_per, 16)) * fine_spread
    x = coarse_centers[coarse] + fine_offsets[fine] + noise * rng.normal(size=(len(fine), 16))
    return x, coarse, fine


def test_retrieval_part_equals_evaluate_on_fine_labels():
    rng = np.random.default_rng(0)
    x, coarse, fine = nested(rng, fine_spread=0.3, noise=0.3)
    out = fine_structure_metrics(x, coarse, fine, "euclidean")
    ref = evaluate(x, fine, metric="euclidean", recall_at=(1,), with_nmi=False)
    assert out["fine_recall@1"] == ref["recall@1"] and out["fine_map@r"] == ref["map@r"]
    assert out["fine_r_precision"] == ref["r_precision"]


def test_within_coarse_nmi_is_mean_of_per_class_nmi():
    rng = np.random.default_rng(1)
    x, coarse, fine = nested(rng, fine_spread=0.4, noise=0.4)
    fine = fine.copy()
    fine[coarse == 3] = 6  # coarse class 3 has one fine class: skipped
    out = fine_structure_metrics(x, coarse, fine, "cosine", seed=2)
    per_class = [nmi(x[coarse == c], fine[coarse == c], seed=2) for c in range(3)]
    assert out["within_coarse_nmi"] == pytest.approx(np.mean(per_class))
    assert out["within_coarse_nmi_classes"] == 3.0


def test_collapsed_fine_structure_scores_lower():
    rng = np.random.default_rng(3)
    kept = fine_structure_metrics(*nested(rng, fine_spread=2.0), "cosine")
    collapsed = fine_structure_metrics(*nested(rng, fine_spread=0.0, noise=0.5), "cosine")
    assert kept["fine_recall@1"] == 1.0 and kept["within_coarse_nmi"] == pytest.approx(1.0)
    assert collapsed["fine_recall@1"] < 0.8 and collapsed["within_coarse_nmi"] < 0.3


def test_labels_must_nest():
    x, coarse, fine = nested(np.random.default_rng(4))
    coarse = coarse.copy()
    coarse[0] = 3  # fine class 0 now spans coarse 0 and 3
    with pytest.raises(ValueError, match="exactly one coarse label"):
        fine_structure_metrics(x, coarse, fine, "cosine")
    with pytest.raises(ValueError, match="must both be"):
        fine_structure_metrics(x, coarse[:-1], fine, "cosine")
    with pytest.raises(ValueError, match="no coarse class contains two or more fine"):
        fine_structure_metrics(x, fine, fine, "cosine")
