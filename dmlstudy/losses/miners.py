"""Vectorized pair/triplet mining on a batch (no Python loops over anchors), with
pytorch-metric-learning's conventions (the test oracle): positive pairs ``y_i = y_j, i ≠ j``,
negative pairs ``y_i ≠ y_j``, both directions listed.  A *triplet set* ``(a, p, neg)`` holds
anchor and positive indices (P,) and a P×B mask of the negatives kept per pair: a triplet loss is
then one P×B matrix, much faster than the ~P·B gathered triplets (:func:`triplet_indices` expands
it).  Miners never propagate gradients: they take detached distance/similarity matrices.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch.autograd.function import once_differentiable

TripletStrategy = Literal["all", "semihard", "hard"]
TRIPLET_STRATEGIES: tuple[str, ...] = ("all", "semihard", "hard")


def pair_masks(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Boolean B×B masks of positive pairs (diagonal excluded) and negative pairs.

    >>> pos, neg = pair_masks(torch.tensor([0, 0, 1, 1]))
    >>> int(pos.sum()), int(neg.sum())
    (4, 8)
    """
    same = labels[:, None] == labels[None, :]
    pos = same & ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    return pos, ~same


class _Gram(torch.autograd.Function):
    """``x xᵀ`` whose backward is one matmul, ``(G + Gᵀ) x``, instead of autograd's two."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x @ x.T

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return (grad + grad.T) @ x


def gram(x: torch.Tensor) -> torch.Tensor:
    """The Gram matrix ``S = x xᵀ`` (B×B): cosine similarities when the rows are L2-normalized."""
    return _Gram.apply(x)


def safe_sqrt(sq: torch.Tensor) -> torch.Tensor:
    """``√sq`` for ``sq ≥ 0`` with a zero (not NaN/inf) gradient where ``sq`` is exactly 0."""
    positive = sq > 0
    return torch.where(
        positive, sq.clamp_min(torch.finfo(sq.dtype).tiny).sqrt(), torch.zeros_like(sq)
    )


def distances_from_gram(g: torch.Tensor) -> torch.Tensor:
    """Pairwise L2 distances ``‖x_i − x_j‖ = √(S_ii + S_jj − 2 S_ij)`` from a Gram matrix."""
    sq = g.diagonal()
    return safe_sqrt((sq[:, None] + sq[None, :] - 2.0 * g).clamp_min(0.0))


def euclidean_distance(x: torch.Tensor) -> torch.Tensor:
    """Pairwise L2 distances (B×B) via the Gram matrix, as ``torch.cdist`` (used by PML's
    ``LpDistance``) does for batches over 25 rows; zero gradient at zero distance."""
    return distances_from_gram(gram(x))


def mine_triplets(
    dist: torch.Tensor, labels: torch.Tensor, strategy: TripletStrategy, margin: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Triplet set ``(a, p, neg_mask)`` mined from a distance matrix.

    Strategies (PML semantics, so PML is an exact oracle):

    * ``"all"``: every valid triplet (``TripletMarginLoss`` without a miner);
    * ``"semihard"``: ``0 < d_an − d_ap ≤ margin``
      (``TripletMarginMiner(type_of_triplets="semihard")``);
    * ``"hard"``: batch-hard (Hermans et al. 2017): per anchor the farthest positive and the
      nearest negative; anchors lacking either are dropped (``BatchHardMiner``).

    >>> x = torch.tensor([[0.0, 0.0], [0.0, 1.0], [3.0, 0.0], [3.0, 1.0]])
    >>> labels = torch.tensor([0, 0, 1, 1])
    >>> a, p, n = triplet_indices(*mine_triplets(euclidean_distance(x), labels, "all", 0.1))
    >>> len(a)
    8
    """
    if strategy not in TRIPLET_STRATEGIES:
        raise ValueError(
            f"Unknown triplet miner {strategy!r}; valid choices: {', '.join(TRIPLET_STRATEGIES)}"
        )
    dist = dist.detach()
    pos, neg = pair_masks(labels)
    if strategy == "hard":
        big = torch.finfo(dist.dtype).max
        hardest_p = dist.masked_fill(~pos, -big).argmax(dim=1)
        hardest_n = dist.masked_fill(~neg, big).argmin(dim=1)
        keep = pos.any(dim=1) & neg.any(dim=1)
        a = torch.nonzero(keep).squeeze(1)
        neg_mask = torch.zeros(len(a), len(labels), dtype=torch.bool, device=dist.device)
        neg_mask[torch.arange(len(a), device=dist.device), hardest_n[a]] = True
        return a, hardest_p[a], neg_mask
    a, p = torch.nonzero(pos, as_tuple=True)
    neg_mask = neg[a]
    if strategy == "semihard":
        gap = dist[a] - dist[a, p][:, None]  # d_an − d_ap, P×B
        neg_mask = neg_mask & (gap > 0) & (gap <= margin)
    return a, p, neg_mask


def triplet_indices(
    a: torch.Tensor, p: torch.Tensor, neg_mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Expand a triplet set to index tensors ``(anchor, positive, negative)``."""
    row, n = torch.nonzero(neg_mask, as_tuple=True)
    return a[row], p[row], n


def multi_similarity_mining(
    sim: torch.Tensor, labels: torch.Tensor, epsilon: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Multi-Similarity pair mining (Wang et al., CVPR 2019, Eq. 7–8) → (pos_mask, neg_mask).

    A negative ``n`` of anchor ``i`` is kept if ``S_in + ε > min_{p} S_ip``; a positive ``p`` is
    kept if ``S_ip − ε < max_{n} S_in``.  Anchors without positives keep no negatives and vice versa
    (same as PML's ``MultiSimilarityMiner``).
    """
    sim = sim.detach()
    pos, neg = pair_masks(labels)
    if len(labels) == 0:
        return pos, neg
    inf = torch.tensor(float("inf"), dtype=sim.dtype, device=sim.device)
    min_pos = torch.where(pos, sim, inf).amin(dim=1, keepdim=True)
    max_neg = torch.where(neg, sim, -inf).amax(dim=1, keepdim=True)
    keep_neg = neg & (sim + epsilon > min_pos)
    keep_pos = pos & (sim - epsilon < max_neg)
    return keep_pos, keep_neg
