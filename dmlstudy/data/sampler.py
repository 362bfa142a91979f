"""m-per-class batch sampler (as in MS loss / Proxy-Anchor training; Wang et al., CVPR 2019)."""

from __future__ import annotations

import numpy as np


class MPerClassSampler:
    """Batches of ``batch_size // m_per_class`` distinct classes × ``m_per_class`` samples.

    Per epoch (``rng = np.random.default_rng([seed, epoch])``, so batches depend on (seed, epoch)
    only and a resumed run replays them): classes are dealt from a shuffled deck of all classes;
    when the deck runs out mid-batch, a fresh shuffled deck completes the batch with classes not
    already in it (those are moved to the deck's end). So a batch never repeats a class and,
    within one epoch, every class is used its fair share rounded down or up (±1 at a deck
    boundary) — no class is left out of a whole deck. Within a class the rows are
    shuffled and consumed cyclically (``m`` distinct rows, without replacement, when the class
    has >= m rows); classes with fewer than ``m`` rows are sampled with replacement.
    ``len(sampler)`` = ``max(1, len(labels) // batch_size)`` batches per epoch.

    >>> s = MPerClassSampler(np.repeat(np.arange(5), 4), m_per_class=2, batch_size=6, seed=0)
    >>> len(s), [b.shape for b in s.epoch_batches(0)]
    (3, [(6,), (6,), (6,)])
    """

    def __init__(self, labels: np.ndarray, m_per_class: int, batch_size: int, seed: int):
        labels = np.asarray(labels)
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer) or len(labels) == 0:
            raise ValueError("labels must be a non-empty 1-D integer array")
        if m_per_class < 1 or batch_size < m_per_class or batch_size % m_per_class:
            raise ValueError(
                f"batch_size ({batch_size}) must be a positive multiple of "
                f"m_per_class ({m_per_class})"
            )
        self.classes, inverse, self.counts = np.unique(
            labels, return_inverse=True, return_counts=True
        )
        self.classes_per_batch = batch_size // m_per_class
        if self.classes_per_batch > len(self.classes):
            raise ValueError(
                f"batch_size/m_per_class = {self.classes_per_batch} classes per batch "
                f"but labels hold only {len(self.classes)} classes"
            )
        self.labels, self.inverse = labels, inverse
        self.m, self.batch_size, self.seed = m_per_class, batch_size, seed
        self.starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]])

    def __len__(self) -> int:
        return max(1, len(self.labels) // self.batch_size)

    def _class_slots(self, rng: np.random.Generator, n_batches: int) -> np.ndarray:
        """Classes of the ``n_batches × classes_per_batch`` slots, dealt from shuffled decks."""
        cpb, n_cls = self.classes_per_batch, len(self.classes)
        out = np.empty((n_batches, cpb), dtype=np.int64)
        deck, pos = rng.permutation(n_cls), 0
        for b in range(n_batches):
            take = deck[pos : pos + cpb]
            pos += len(take)
            if len(take) < cpb:  # deck exhausted: new deck, classes of this batch moved last
                deck = rng.permutation(n_cls)
                dup = np.isin(deck, take)
                deck = np.concatenate([deck[~dup], deck[dup]])
                pos = cpb - len(take)
                take = np.concatenate([take, deck[:pos]])
            out[b] = take
        return out.reshape(-1)

    def epoch_batches(self, epoch: int) -> list[np.ndarray]:
        """The batches of ``epoch``: arrays of ``batch_size`` row positions into ``labels``."""
        rng = np.random.default_rng([self.seed, epoch])
        n_batches, m = len(self), self.m
        slots = self._class_slots(rng, n_batches)  # class (0..C-1) of each batch slot
        # rows grouped by class, shuffled within each class
        grouped = np.lexsort((rng.random(len(self.labels)), self.inverse))
        # k-th occurrence of a class among the slots → its k-th block of m rows, cyclically
        order = np.argsort(slots, kind="stable")
        first = np.searchsorted(slots[order], slots[order])
        occurrence = np.empty_like(slots)
        occurrence[order] = np.arange(len(slots)) - first
        counts = self.counts[slots][:, None]
        cyclic = (occurrence[:, None] * m + np.arange(m)) % counts
        random = (rng.random((len(slots), m)) * counts).astype(np.int64)
        offset = np.where(counts >= m, cyclic, random)
        rows = grouped[self.starts[slots][:, None] + offset]
        return list(rows.reshape(n_batches, self.batch_size).astype(np.int64))


class RandomBatchSampler:
    """Random batches: each epoch a fresh permutation of all rows, cut into ``batch_size`` chunks
    (the last, incomplete one dropped), as the official Proxy-Anchor, SoftTriple and ProxyGML
    recipes train (``DataLoader(shuffle=True, drop_last=True)``). Batches depend on (seed, epoch)
    only, so a resumed run replays them. Same interface as :class:`MPerClassSampler`.

    >>> s = RandomBatchSampler(np.repeat(np.arange(5), 4), batch_size=6, seed=0)
    >>> len(s), sorted(np.concatenate(s.epoch_batches(0)).tolist()) == sorted(set(
    ...     np.concatenate(s.epoch_batches(0)).tolist()))
    (3, True)
    """

    def __init__(self, labels: np.ndarray, batch_size: int, seed: int):
        labels = np.asarray(labels)
        if labels.ndim != 1 or len(labels) < batch_size or batch_size < 2:
            raise ValueError(
                f"need a 1-D label array with at least batch_size={batch_size} >= 2 rows"
            )
        self.labels, self.batch_size, self.seed = labels, batch_size, seed

    def __len__(self) -> int:
        return len(self.labels) // self.batch_size

    def epoch_batches(self, epoch: int) -> list[np.ndarray]:
        """The batches of ``epoch``: arrays of ``batch_size`` row positions into ``labels``."""
        order = np.random.default_rng([self.seed, epoch, 2]).permutation(len(self.labels))
        n = len(self) * self.batch_size
        return list(order[:n].reshape(len(self), self.batch_size).astype(np.int64))


def build_sampler(
    kind: str, labels: np.ndarray, batch_size: int, m_per_class: int, seed: int
) -> MPerClassSampler | RandomBatchSampler:
    """``"m_per_class"`` (balanced: ``batch_size // m_per_class`` classes × ``m_per_class``) or
    ``"random"`` (uniform batches; ``m_per_class`` unused)."""
    if kind == "m_per_class":
        return MPerClassSampler(labels, m_per_class, batch_size, seed)
    if kind == "random":
        return RandomBatchSampler(labels, batch_size, seed)
    raise ValueError(f"unknown sampler {kind!r}; valid choices: m_per_class, random")
