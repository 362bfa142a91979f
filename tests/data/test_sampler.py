"""MPerClassSampler: batch structure, replacement rule, coverage, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from dmlstudy.data import MPerClassSampler


def labels_with_sizes(sizes, seed=0) -> np.ndarray:
    labels = np.repeat(np.arange(len(sizes)) * 7 + 3, sizes)  # non-contiguous ids
    return np.random.default_rng(seed).permutation(labels)


@pytest.mark.parametrize("m,batch", [(2, 8), (4, 32), (5, 20)])
def test_every_batch_is_classes_times_m(m, batch):
    labels = labels_with_sizes(np.random.default_rng(1).integers(1, 12, size=40))
    s = MPerClassSampler(labels, m_per_class=m, batch_size=batch, seed=0)
    batches = s.epoch_batches(0)
    assert len(batches) == len(s) == len(labels) // batch
    for b in batches:
        assert b.shape == (batch,) and b.dtype == np.int64
        assert b.min() >= 0 and b.max() < len(labels)
        classes, counts = np.unique(labels[b], return_counts=True)
        assert len(classes) == batch // m and (counts == m).all()
        for c in classes:  # distinct rows unless the class is smaller than m
            rows = b[labels[b] == c]
            if (labels == c).sum() >= m:
                assert len(set(rows)) == m
            else:
                assert set(rows) <= set(np.flatnonzero(labels == c))


def test_small_classes_are_sampled_with_replacement():
    labels = labels_with_sizes([1] * 6 + [2] * 6)
    s = MPerClassSampler(labels, m_per_class=3, batch_size=12, seed=0)
    for b in s.epoch_batches(0):
        for c in np.unique(labels[b]):
            assert (labels[b] == c).sum() == 3


def test_replacement_draws_are_random_not_cyclic():
    labels = labels_with_sizes([2] * 8)  # m=3 > 2 rows: with replacement, uniformly
    s = MPerClassSampler(labels, m_per_class=3, batch_size=12, seed=0)
    draws = [
        b[labels[b] == c]
        for e in range(10)
        for b in s.epoch_batches(e)
        for c in np.unique(labels[b])
    ]
    n_single = sum(len(set(d)) == 1 for d in draws)  # all 3 draws the same row: p = 1/4
    assert 0.1 < n_single / len(draws) < 0.4


def test_deterministic_in_seed_and_epoch_only():
    labels = labels_with_sizes([5] * 30)
    a = MPerClassSampler(labels, 3, 15, seed=4)
    b = MPerClassSampler(labels, 3, 15, seed=4)
    b.epoch_batches(0)  # history must not matter: resuming at epoch 2 replays epoch 2
    np.random.seed(123)
    assert all((x == y).all() for x, y in zip(a.epoch_batches(2), b.epoch_batches(2)))
    assert not all((x == y).all() for x, y in zip(a.epoch_batches(2), a.epoch_batches(3)))
    c = MPerClassSampler(labels, 3, 15, seed=5)
    assert not all((x == y).all() for x, y in zip(a.epoch_batches(2), c.epoch_batches(2)))


def test_classes_used_evenly_and_rows_cycled():
    labels = labels_with_sizes([8] * 10)
    s = MPerClassSampler(labels, m_per_class=2, batch_size=8, seed=0)  # 4 classes per batch
    rows = np.concatenate(s.epoch_batches(0))  # 10 batches: 5 permutations of 8 classes
    per_class = np.unique(labels[rows], return_counts=True)[1]
    assert per_class.sum() == 80 and per_class.max() - per_class.min() <= 2 * 2
    # a class used k times gets k*m distinct rows while k*m <= its size
    for c in np.unique(labels):
        picked = rows[labels[rows] == c]
        assert len(set(picked)) == min(len(picked), 8)


def test_bad_arguments():
    labels = labels_with_sizes([4] * 3)
    with pytest.raises(ValueError, match="multiple of m_per_class"):
        MPerClassSampler(labels, 3, 8, seed=0)
    with pytest.raises(ValueError, match="only 3 classes"):
        MPerClassSampler(labels, 2, 8, seed=0)
    with pytest.raises(ValueError, match="integer array"):
        MPerClassSampler(labels.astype(float), 2, 4, seed=0)


@pytest.mark.parametrize("n_classes", [83, 85, 31])
def test_fair_class_coverage_when_classes_do_not_divide(n_classes):
    """CUB/Cars-like: ~85 train classes, 30 classes per batch (120 = 30 x 4). Every class must
    be used floor or ceil of its fair share within ONE epoch (give or take one at a deck
    boundary), not dropped from whole permutations: cutting each permutation of 85 classes to
    60 left 25 random classes out per permutation and spread one epoch's use over 4..10."""
    labels = labels_with_sizes([59] * n_classes)
    s = MPerClassSampler(labels, m_per_class=4, batch_size=120, seed=0)
    for epoch in range(3):
        batches = s.epoch_batches(epoch)
        for b in batches:  # still no class twice in a batch
            assert len(np.unique(labels[b])) == 30
        uses = np.unique(labels[np.concatenate(batches)], return_counts=True)[1] // 4
        assert len(uses) == n_classes and uses.max() - uses.min() <= 2, np.bincount(uses)
