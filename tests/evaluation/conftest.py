"""Oracles for the evaluation tests: brute-force k-NN and per-query metric loops (float64)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest


def brute_ranking(query, gallery=None, metric="cosine", k=None):
    """Full (or top-k) ranking per query by (distance, gallery index), self left out by index."""
    q = np.asarray(query, dtype=np.float64)
    g = q if gallery is None else np.asarray(gallery, dtype=np.float64)
    if metric == "cosine":
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
        g = g / np.linalg.norm(g, axis=1, keepdims=True)
        keys = -(q @ g.T)
    else:
        keys = ((q[:, None, :] - g[None, :, :]) ** 2).sum(-1)
    if gallery is None:
        keys[np.arange(len(q)), np.arange(len(q))] = np.inf
    cols = np.broadcast_to(np.arange(len(g)), keys.shape)
    order = np.lexsort((cols, keys), axis=-1)
    n_keep = len(g) - (gallery is None) if k is None else k
    return order[:, :n_keep], np.take_along_axis(keys, order, axis=1)[:, :n_keep]


def paper_metrics(ranking, labels, gallery_labels=None, recall_at=(1, 2, 4, 8)):
    """Recall@K / MAP@R / R-Precision by a per-query loop from Musgrave et al. 2020.

    ``ranking`` must be the full ranking of the gallery (self excluded). Lone queries (R = 0)
    are skipped, as PML's AccuracyCalculator does.
    """
    labels = np.asarray(labels)
    g_labels = labels if gallery_labels is None else np.asarray(gallery_labels)
    rec = {k: [] for k in recall_at}
    maps, rps = [], []
    for i, y in enumerate(labels):
        r = int((g_labels == y).sum()) - (gallery_labels is None)
        if r == 0:
            continue
        ranked = g_labels[ranking[i]] == y
        for k in recall_at:
            rec[k].append(float(ranked[:k].any()))
        rps.append(ranked[:r].sum() / r)
        ap, correct = 0.0, 0
        for j in range(r):
            if ranked[j]:
                correct += 1
                ap += correct / (j + 1)
        maps.append(ap / r)
    out = {f"recall@{k}": float(np.mean(v)) for k, v in rec.items()}
    out["map@r"] = float(np.mean(maps))
    out["r_precision"] = float(np.mean(rps))
    return out


def tie_data(rng, n_distinct=12, n=80, dim=6, cosine_exact=True):
    """Embeddings with many exact duplicates whose scores are exact in float32.

    Rows have entries in {-1, 0, 1} with exactly 4 non-zeros: norms are 2, so normalized
    entries are ±0.5 and every dot product / squared distance is exactly representable.
    """
    base = np.zeros((n_distinct, dim), dtype=np.float32)
    for i in range(n_distinct):
        cols = rng.choice(dim, size=4, replace=False)
        base[i, cols] = rng.choice([-1.0, 1.0], size=4)
    return base[rng.integers(0, n_distinct, size=n)]


def near_tie_data(rng, n=80, dim=6):
    """``tie_data`` plus n // 2 near-duplicates of its rows (one non-zero entry moved by one
    float32 ulp): their scores differ from exact duplicates' only in the last bits."""
    x = tie_data(rng, n=n, dim=dim)
    near = x[rng.integers(0, n, size=n // 2)]
    for row in near:
        col = rng.choice(np.flatnonzero(row))
        row[col] = np.nextafter(row[col], np.float32(4 * rng.integers(0, 2) - 2))
    return np.concatenate([x, near])


@pytest.fixture
def oracle():
    return SimpleNamespace(
        brute_ranking=brute_ranking,
        paper_metrics=paper_metrics,
        tie_data=tie_data,
        near_tie_data=near_tie_data,
    )


@pytest.fixture
def perturbed_faiss(monkeypatch):
    """``apply(seed, ulps=2)`` swaps in faiss flat indexes whose scores are off by up to ``ulps``
    float32 ulps (random), as another BLAS/SIMD path or CPU may compute them; each still returns
    the k best by its own scores, equal scores in random order. Within the error bound that
    ``rescore.float32_error_bound`` allows (2 ulps <= 4 u |score| <= gamma_d scale for d >= 4)."""
    import faiss

    originals = {"IndexFlatIP": faiss.IndexFlatIP, "IndexFlatL2": faiss.IndexFlatL2}

    def apply(seed, ulps=2):
        rng = np.random.default_rng(seed)

        def make(base_cls, larger_is_better):
            class Perturbed(base_cls):
                def search(self, q, k):
                    d, i = base_cls.search(self, q, self.ntotal)
                    noise = np.spacing(np.abs(d)) * rng.integers(-ulps, ulps + 1, size=d.shape)
                    d = (d + noise).astype(np.float32)
                    key = -d if larger_is_better else d
                    order = np.lexsort((rng.random(d.shape), key), axis=-1)[:, :k]
                    return np.take_along_axis(d, order, 1), np.take_along_axis(i, order, 1)

            return Perturbed

        monkeypatch.setattr(faiss, "IndexFlatIP", make(originals["IndexFlatIP"], True))
        monkeypatch.setattr(faiss, "IndexFlatL2", make(originals["IndexFlatL2"], False))

    return apply
