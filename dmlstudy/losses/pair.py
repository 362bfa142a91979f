"""Pair-based losses: contrastive (Hadsell et al. 2006), triplet (Weinberger & Saul 2009), N-pair
(Sohn 2016, Eq. 6) and multi-similarity (Wang et al. 2019, Eq. 12), vectorized over the batch
(B×B matrices); reductions follow pytorch-metric-learning.  Formulas, keywords, the N-pair pairing
rule and the oracles: docs/losses.md.

>>> g = torch.Generator().manual_seed(0)
>>> x, y = torch.randn(8, 4, generator=g), torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
>>> all(torch.isfinite(build_loss(n)(x, y))
...     for n in ("contrastive", "triplet", "npair", "multi_similarity"))
True
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F

from dmlstudy.losses.base import DMLLoss, build_loss, register_loss  # noqa: F401 (doctest)
from dmlstudy.losses.interface import SCALE, UNIT_MARGIN, Range
from dmlstudy.losses.miners import (
    TRIPLET_STRATEGIES,
    TripletStrategy,
    euclidean_distance,
    gram,
    mine_triplets,
    multi_similarity_mining,
    pair_masks,
)


def mean_nonzero(values: torch.Tensor) -> torch.Tensor:
    """Mean over the strictly positive entries (PML ``AvgNonZeroReducer``); 0 when there are none.

    ``values`` must be ≥ 0 with excluded entries already set to 0.  The empty case returns an exact
    zero that stays connected to the graph (zero gradient, never NaN).
    """
    count = torch.count_nonzero(values)
    return values.sum() / count.clamp_min(1)


def log1p_sum_exp(z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Row-wise ``log(1 + Σ_{j∈mask} e^{z_ij})``, stable, 0 for empty rows with finite gradients."""
    z = z.masked_fill(~mask, float("-inf"))
    z = torch.cat([z, torch.zeros_like(z[:, :1])], dim=1)
    return torch.logsumexp(z, dim=1)


def _check_nonneg(**values: float) -> None:
    for key, value in values.items():
        if value < 0:
            raise ValueError(f"{key} must be >= 0, got {value}")


@register_loss("contrastive")
class ContrastiveLoss(DMLLoss):
    """Contrastive loss (Hadsell, Chopra, LeCun, CVPR 2006) in PML's form.

    ``L = mean_{nz}([d_ij − m_pos]_+ over positive pairs) + mean_{nz}([m_neg − d_ij]_+ over negative
    pairs)``, ``d`` the L2 distance of L2-normalized embeddings; each mean runs over the non-zero
    terms only (PML ``ContrastiveLoss`` + ``AvgNonZeroReducer``).

    Args:
        pos_margin: positives closer than this are not pulled further (default 0, PML default;
            at most 0 every positive pair with d > 0 is pulled alike, so any value below 0 trains
            exactly as 0: 0 is this parameter's own limit).
        neg_margin: negatives farther than this are not pushed (default 0.5; PML's default 1 is the
            unnormalized-distance value; MLRC tuned −0.20/0.38 on CUB for cosine similarity, a
            similarity margin, not this distance one).
    """

    # distances of unit vectors lie in [0, 2]
    hyperparameter_ranges: ClassVar[dict[str, Range]] = {
        "pos_margin": Range(
            0, 2, beyond="below 0 every positive pair is pulled as at 0, the same training: use 0"
        ),
        "neg_margin": Range(-2, 2),
    }

    def __init__(self, *, pos_margin: float = 0.0, neg_margin: float = 0.5) -> None:
        super().__init__()
        self.pos_margin = float(pos_margin)
        self.neg_margin = float(neg_margin)

    def compute(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        dist = euclidean_distance(F.normalize(embeddings, dim=1))
        pos, neg = pair_masks(labels)
        pos_loss = F.relu(dist - self.pos_margin).masked_fill(~pos, 0.0)
        neg_loss = F.relu(self.neg_margin - dist).masked_fill(~neg, 0.0)
        return mean_nonzero(pos_loss) + mean_nonzero(neg_loss)


@register_loss("triplet")
class TripletLoss(DMLLoss):
    """Triplet margin loss (Weinberger & Saul 2009; Schroff et al., FaceNet 2015).

    ``L = mean_{nz} [d_ap − d_an + m]_+`` over the mined triplets, ``d`` the L2 distance of
    L2-normalized embeddings, mean over non-zero terms (PML ``TripletMarginLoss`` default reducer).

    Args:
        margin: m (default 0.1, the study's setting for normalized embeddings).
        miner: ``"all"`` (every triplet), ``"semihard"`` (``0 < d_an − d_ap ≤ m``, PML
            ``TripletMarginMiner``) or ``"hard"`` (batch-hard, Hermans et al. 2017). Default
            ``"all"``.
    """

    hyperparameter_ranges: ClassVar[dict[str, Range]] = {"margin": UNIT_MARGIN}

    def __init__(self, *, margin: float = 0.1, miner: TripletStrategy = "all") -> None:
        super().__init__()
        _check_nonneg(margin=margin)
        if miner not in TRIPLET_STRATEGIES:
            raise ValueError(
                f"Unknown miner {miner!r}; valid choices: {', '.join(TRIPLET_STRATEGIES)}"
            )
        self.margin = float(margin)
        self.miner = miner

    def compute(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        dist = euclidean_distance(F.normalize(embeddings, dim=1))
        a, p, neg_mask = mine_triplets(dist, labels, self.miner, self.margin)
        violation = F.relu(dist[a, p][:, None] - dist[a] + self.margin).masked_fill(~neg_mask, 0.0)
        return mean_nonzero(violation)


@register_loss("npair")
class NPairLoss(DMLLoss):
    """Multi-class N-pair loss (Sohn, NeurIPS 2016, Eq. 6) with L2 embedding regularization.

    Pairing (every sample used): the samples ``s_0, s_1, …`` of a class, in batch order, form the
    disjoint (anchor, positive) pairs ``(s_0, s_1), (s_2, s_3), …``; a class with an odd count
    ``n ≥ 3`` adds ``(s_{n−1}, s_0)``; a class with one sample has no positive and enters only the
    regularizer.  Each anchor's softmax runs over its own positive and the positives of every pair
    of **another** class (Sohn's negatives; other pairs of its own class are left out, never
    negatives): ``L = mean_pairs −log softmax_j(f_a·f_j)[p] + w·mean_b ‖x_b‖²``.  At 2 per class
    this is exactly Sohn's loss and PML's ``NPairsLoss`` (first and second occurrence, unnormalized
    dot products); with N classes at 4 per class, each of the 2N anchors has 2N−2 negatives
    (PML: N anchors with N−1 negatives, half the batch unused).  Embeddings are
    **unnormalized**: Sohn regularizes the norm instead (TF reference: "Embeddings should not be
    l2 normalized").  Depends on the within-class order.

    Args:
        l2_reg_weight: w (default 0.001).  No official code exists and we found no weight in the
            paper text available to us; the widely used reference implementation (TensorFlow
            ``contrib.losses.metric_learning.npairs_loss``, ``reg_lambda=0.002``) computes
            ``0.25·λ·(mean‖a‖² + mean‖p‖²)`` = ``0.001·mean`` over the 2N embeddings, which our
            default reproduces (the PML oracle: ``LpRegularizer(power=2)``, weight w); 0 disables
            it.
    """

    normalize_embeddings = False

    hyperparameter_ranges: ClassVar[dict[str, Range]] = {"l2_reg_weight": Range(0, 10)}

    def __init__(self, *, l2_reg_weight: float = 0.001) -> None:
        super().__init__()
        _check_nonneg(l2_reg_weight=l2_reg_weight)
        self.l2_reg_weight = float(l2_reg_weight)

    @staticmethod
    def pairs(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Anchor and positive indices of every pair (class docstring's rule), sorted by label,
        then by position within the class.

        >>> a, p = NPairLoss.pairs(torch.tensor([5, 2, 5, 2, 5, 9, 2, 2]))
        >>> a.tolist(), p.tolist()
        ([1, 6, 0, 4], [3, 7, 2, 0])
        """
        order = torch.argsort(labels, stable=True)
        _, counts = torch.unique_consecutive(labels[order], return_counts=True)
        starts = torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
        size = torch.repeat_interleave(counts, counts)
        rank = torch.arange(len(labels), device=labels.device) - starts
        is_anchor = (rank % 2 == 0) & (size >= 2)
        positive = starts + (rank + 1) % size
        return order[is_anchor], order[positive[is_anchor]]

    def compute(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        a, p = self.pairs(labels)
        reg = self.l2_reg_weight * (embeddings * embeddings).sum() / max(len(embeddings), 1)
        if len(a) == 0:
            return reg + 0.0 * embeddings.sum()
        logits = embeddings[a] @ embeddings[p].T
        same_class = labels[a][:, None] == labels[p][None, :]
        own = torch.eye(len(a), dtype=torch.bool, device=labels.device)
        logits = logits.masked_fill(same_class & ~own, float("-inf"))  # other pairs of the class
        target = torch.arange(len(a), device=embeddings.device)
        return F.cross_entropy(logits, target) + reg


@register_loss("multi_similarity")
class MultiSimilarityLoss(DMLLoss):
    """Multi-Similarity loss (Wang et al., CVPR 2019, Eq. 12) with MS mining (Eq. 7–8).

    ``L = mean_i [ 1/α log(1 + Σ_{p∈P_i} e^{−α(S_ip − λ)})``
    ``+ 1/β log(1 + Σ_{n∈N_i} e^{β(S_in − λ)}) ]``
    on cosine similarities; ``P_i``, ``N_i`` are the pairs kept by the miner; the mean runs over all
    B anchors (PML ``MultiSimilarityLoss`` + ``MultiSimilarityMiner``).

    Args:
        alpha: positive scale α (default 2, paper).
        beta: negative scale β (default 50, paper; the official code's CUB config uses 40).
        threshold: λ, the similarity offset (default 0.5, paper; official code ``thresh``, PML
            ``base``).
        epsilon: ε, the mining margin (default 0.1, paper).
        mining: apply MS mining (default True); False uses every pair.
    """

    hyperparameter_ranges: ClassVar[dict[str, Range]] = {
        "alpha": SCALE,
        "beta": SCALE,
        "threshold": Range(-1, 1),
        "epsilon": Range(0, 2),
    }

    def __init__(
        self,
        *,
        alpha: float = 2.0,
        beta: float = 50.0,
        threshold: float = 0.5,
        epsilon: float = 0.1,
        mining: bool = True,
    ) -> None:
        super().__init__()
        if alpha <= 0 or beta <= 0:
            raise ValueError(f"alpha and beta must be > 0, got alpha={alpha}, beta={beta}")
        _check_nonneg(epsilon=epsilon)
        self.alpha, self.beta, self.threshold = float(alpha), float(beta), float(threshold)
        self.epsilon, self.mining = float(epsilon), bool(mining)

    def compute(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        sim = gram(F.normalize(embeddings, dim=1))
        if self.mining:
            pos, neg = multi_similarity_mining(sim, labels, self.epsilon)
        else:
            pos, neg = pair_masks(labels)
        pos_term = log1p_sum_exp(-self.alpha * (sim - self.threshold), pos) / self.alpha
        neg_term = log1p_sum_exp(self.beta * (sim - self.threshold), neg) / self.beta
        return (pos_term + neg_term).sum() / max(len(labels), 1)
