"""Direction regularization (Mohan et al., "Moving in the Right Direction", CVPR 2020): the term of
every negative gets ``−γ·cos(n − a, p − a)``.  Triplet: ``[d_ap − d_an + m − γ·cos]_+``;
multi-similarity: negative exponent ``β(S_in − λ − γ·cos)`` with the hardest positive; ProxyNCA:
negative logits ``−s·D(x̂, p̂_c) − γ·cos(p̂_c − x̂, p̂_y − x̂)``.  Keywords ``base``,
``base_params`` (the base loss's own keywords) and ``gamma``.  No official code exists: the
study's reading and the cosine floor ``τ = 10·√eps`` for vanishing vectors are in docs/losses.md.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from dmlstudy.losses.base import DMLLoss, build_base_loss, register_loss
from dmlstudy.losses.interface import Range
from dmlstudy.losses.miners import (
    distances_from_gram,
    gram,
    mine_triplets,
    multi_similarity_mining,
    pair_masks,
    safe_sqrt,
)
from dmlstudy.losses.pair import (
    MultiSimilarityLoss,
    TripletLoss,
    log1p_sum_exp,
    mean_nonzero,
)
from dmlstudy.losses.proxy import ProxyNCALoss, nca_losses

DirectionBase = Literal["triplet", "multi_similarity", "proxy_nca"]
DIRECTION_BASES: tuple[str, ...] = ("triplet", "multi_similarity", "proxy_nca")


def length_floor(dtype: torch.dtype) -> float:
    """τ = 10·√eps: lengths below it are rounding noise when computed from dot products."""
    return 10.0 * torch.finfo(dtype).eps ** 0.5


def direction_cosines(
    dot_tr: torch.Tensor,
    dot_to: torch.Tensor,
    dot_or: torch.Tensor,
    dot_oo: torch.Tensor,
    dist_to: torch.Tensor,
    dist_ro: torch.Tensor,
) -> torch.Tensor:
    """``cos(t − o, r − o)`` from dot products only (no extra matmul over the embedding dimension):
    ``(t·r − t·o − o·r + o·o) / (max(‖t − o‖, τ)·max(‖r − o‖, τ))`` clamped to [−1, 1], so it goes
    to 0 with a vanishing vector (docs/losses.md).  Arguments broadcast (rows: origins ``o`` with
    references ``r``; columns: targets ``t``).

    >>> d = torch.tensor(2.0).sqrt()
    >>> round(float(direction_cosines(torch.tensor(0.0), torch.tensor(0.0), torch.tensor(0.0),
    ...                               1.0, d, d)), 6)
    0.5
    """
    tau = length_floor(dist_to.dtype)
    cos = (dot_tr - dot_to - dot_or + dot_oo) / (dist_to.clamp_min(tau) * dist_ro.clamp_min(tau))
    return cos.clamp(-1.0, 1.0)


@register_loss("direction")
class DirectionLoss(DMLLoss):
    """A base loss with direction regularization (Mohan et al. 2020); docs/losses.md.

    Args:
        base: ``"triplet"`` (default), ``"multi_similarity"`` or ``"proxy_nca"``.
        base_params: the base loss's own hyper-parameters (its registry keywords, validated by
            :func:`~dmlstudy.losses.base.build_base_loss`); missing ones take the base loss's
            defaults (triplet m 0.1, miner ``"all"`` as the reproduction; MS α 2, β 50, λ 0.5,
            ε 0.1, mining on; ProxyNCA s 1, true class excluded, proxy lr ×1, ``randn/8``
            proxies).  ``base="proxy_nca"`` also needs ``num_classes`` and ``embedding_dim``.
        gamma: γ, the regularization weight (default 0.5, the study's design value; the public
            reproduction tuned 0.49 on CUB).
    """

    hyperparameter_ranges: ClassVar[dict[str, Range]] = {"gamma": Range(0, 100)}

    def __init__(
        self,
        *,
        base: DirectionBase = "triplet",
        base_params: dict[str, Any] | None = None,
        gamma: float = 0.5,
        num_classes: int | None = None,
        embedding_dim: int | None = None,
    ) -> None:
        super().__init__()
        if gamma < 0:
            raise ValueError(f"direction: gamma must be >= 0, got {gamma}")
        # The base loss validates its keywords and fills its defaults; ProxyNCA also draws the
        # proxies, which are adopted here (one draw, the state_dict key stays "proxies").
        inner = build_base_loss(
            "direction",
            base,
            base_params,
            choices=DIRECTION_BASES,
            num_classes=num_classes,
            embedding_dim=embedding_dim,
        )
        self.base, self.gamma, self.num_classes = base, float(gamma), num_classes
        self.proxies: nn.Parameter | None = None
        if isinstance(inner, TripletLoss):
            self.margin, self.miner = inner.margin, inner.miner
        elif isinstance(inner, MultiSimilarityLoss):
            self.alpha, self.beta, self.threshold = inner.alpha, inner.beta, inner.threshold
            self.epsilon, self.mining = inner.epsilon, inner.mining
        else:
            assert isinstance(inner, ProxyNCALoss)
            self.softmax_scale = float(inner.softmax_scale)
            self.include_positive = bool(inner.include_positive)
            self.proxy_lr_multiplier = float(inner.proxy_lr_multiplier)
            self.proxies = inner.proxies

    def expected_inputs(self) -> tuple[int | None, int | None]:
        """Class ids are checked against ``num_classes`` with ProxyNCA (they index its proxies)."""
        return (self.num_classes, None) if self.proxies is not None else (None, None)

    def param_groups(self, base_lr: float) -> list[dict[str, Any]]:
        """The proxies (``base="proxy_nca"``) at ``base_lr × proxy_lr_multiplier``; else none."""
        if self.proxies is None:
            return []
        return [
            {
                "params": [self.proxies],
                "lr": base_lr * self.proxy_lr_multiplier,
                "name": "direction.proxies",
            }
        ]

    def compute(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.base == "triplet":
            return self._triplet(F.normalize(embeddings, dim=1), labels)
        if self.base == "multi_similarity":
            return self._multi_similarity(F.normalize(embeddings, dim=1), labels)
        return self._proxy_nca(embeddings, labels)

    def _triplet(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        sim = gram(x)
        dist = distances_from_gram(sim)
        a, p, neg_mask = mine_triplets(dist, labels, self.miner, self.margin)
        d_ap = dist[a, p][:, None]
        # P×B: cos(x_n − x_a, x_p − x_a) for every mined (a, p) and every n
        cos = direction_cosines(
            sim[p], sim[a], sim[a, p][:, None], sim[a, a][:, None], dist[a], d_ap
        )
        return mean_nonzero(
            F.relu(d_ap - dist[a] + self.margin - self.gamma * cos).masked_fill(~neg_mask, 0.0)
        )

    def _multi_similarity(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        sim = gram(x)
        all_pos, all_neg = pair_masks(labels)
        pos, neg = (
            multi_similarity_mining(sim, labels, self.epsilon)
            if self.mining
            else (all_pos, all_neg)
        )
        rows = torch.arange(len(labels), device=x.device)
        hardest = sim.detach().masked_fill(~all_pos, float("inf")).argmin(dim=1)
        dist = distances_from_gram(sim)
        # B×B: cos(x_n − x_i, x_h − x_i), h the hardest positive of anchor i (0 without positives)
        cos = direction_cosines(
            sim[hardest],
            sim,
            sim[rows, hardest][:, None],
            sim.diagonal()[:, None],
            dist,
            dist[rows, hardest][:, None],
        ).masked_fill(~all_pos.any(dim=1, keepdim=True), 0.0)
        pos_term = log1p_sum_exp(-self.alpha * (sim - self.threshold), pos) / self.alpha
        neg_term = (
            log1p_sum_exp(self.beta * (sim - self.threshold - self.gamma * cos), neg) / self.beta
        )
        return (pos_term + neg_term).sum() / max(len(labels), 1)

    def _proxy_nca(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        assert self.proxies is not None and self.num_classes is not None
        x = F.normalize(embeddings, dim=1)
        p = F.normalize(self.proxies.to(embeddings.dtype), dim=1)
        cos_xp = F.linear(x, p)  # B×C
        sq = (2.0 - 2.0 * cos_xp).clamp_min(0.0)  # = proxy.normalized_sq_distances
        dist = safe_sqrt(sq)
        # p_y·p_c only for the classes present: a k×C product instead of B×C over d.
        present, inverse = torch.unique(labels, return_inverse=True)
        cos_pp = F.linear(p[present], p)[inverse]  # B×C: p_{y_i}·p_c
        rows = torch.arange(len(labels), device=labels.device)
        # B×C: cos(p_c − x, p_y − x), unit vectors (x·x = 1 as in the squared distance above)
        cos = direction_cosines(
            cos_pp, cos_xp, cos_xp[rows, labels][:, None], 1.0, dist, dist[rows, labels][:, None]
        )
        not_y = ~F.one_hot(labels, self.num_classes).bool()
        logits = -self.softmax_scale * sq - self.gamma * cos.masked_fill(~not_y, 0.0)
        return nca_losses(logits, labels, include_positive=self.include_positive).mean()
