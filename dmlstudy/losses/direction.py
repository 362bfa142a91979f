"""Direction regularization (Mohan, Sankaran, Fedorishin, Setlur, Govindaraju, CVPR 2020,
"Moving in the Right Direction: A Regularization for Deep Metric Learning").

The regularizer subtracts ``γ·cos(n − a, p − a)`` from the term of every negative, so a negative
lying in the direction of the positive (near both anchor and positive) is pushed less, and its
push is steered away from the anchor–positive line.  No official code exists; the formulas below
are the study's reading of the paper for its three base losses (design notes, ``losses.md``); the
triplet form is identical to the public reproduction ``alpoler/mohan2020`` (``loss/mvrloss.py``,
tuned γ ≈ 0.49), except that we average over the non-zero terms as the triplet baseline does
(the reproduction takes the plain mean):

* ``triplet``: ``[d_ap − d_an + m − γ·cos(x̂_n − x̂_a, x̂_p − x̂_a)]_+`` over the mined triplets, L2
  distances of normalized embeddings, mean over non-zero terms (as
  :class:`~dmlstudy.losses.pair.TripletLoss`, so the only difference to the baseline is the
  regularizer);
* ``multi_similarity``: the negative exponent becomes ``β(S_in − λ − γ·cos(x̂_n − x̂_a, x̂_p* − x̂_a))``
  with ``p*`` the hardest (least similar) positive of the anchor; anchors without positives get
  ``cos = 0``; the positive term is unchanged;
* ``proxy_nca``: the negative logits become ``−s·D(x̂, p̂_c) − γ·cos(p̂_c − x̂, p̂_y − x̂)`` for c ≠ y
  (ProxyNCA as :class:`~dmlstudy.losses.proxy.ProxyNCALoss`, with its own proxies).

Cosines of a zero vector are taken as 0: ``u·v / (max(‖u‖, τ)·max(‖v‖, τ))`` clamped to [−1, 1],
``τ = 10·√eps`` of the dtype (float32 3.5e-3, float64 1.5e-7).  Distances computed from dot products
(``√(2 − 2·cos)``) cannot resolve lengths below ≈ √eps, so below τ the numerator is rounding noise;
flooring each length (not the product) makes the cosine go continuously to 0 there with a gradient
bounded by ~1/τ (a 1e-8 floor on the product gave |cos| ≫ 1 in float32 and ~1e6 gradients when an
embedding sits on its own proxy or a negative on its anchor).  Inputs below float32 (bf16) are
computed in float32.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from dmlstudy.losses.base import DMLLoss, register_loss
from dmlstudy.losses.miners import (
    TRIPLET_STRATEGIES,
    TripletStrategy,
    distances_from_gram,
    gram,
    mine_triplets,
    multi_similarity_mining,
    pair_masks,
    safe_sqrt,
)
from dmlstudy.losses.pair import log1p_sum_exp, mean_nonzero
from dmlstudy.losses.proxy import check_inputs, nca_losses, reference_proxy_nca_init

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
    to 0 with a vanishing vector (module docstring).  Arguments broadcast (rows: origins ``o`` with
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
    """A base loss with direction regularization (Mohan et al. 2020); see the module docstring.

    Args:
        base: ``"triplet"`` (default), ``"multi_similarity"`` or ``"proxy_nca"``.
        gamma: γ, the regularization weight (default 0.5, the study's design value; the public
            reproduction tuned 0.49 on CUB).
        margin, miner: triplet margin m (default 0.1) and miner (default ``"all"``, as the
            reproduction) — used with ``base="triplet"``.
        alpha, beta, threshold, epsilon, mining: MS α 2, β 50, λ 0.5, ε 0.1, mining on (paper
            defaults) — used with ``base="multi_similarity"``.
        softmax_scale, include_positive, proxy_lr_multiplier: ProxyNCA scale s 1, true class
            excluded from the denominator (Movshovitz-Attias et al. 2017, Eq. 4), proxy lr ×1,
            ``randn/8`` proxies (as ``proxy_nca``) — used with ``base="proxy_nca"``, which also
            needs the runtime values ``num_classes`` and ``embedding_dim``.
    """

    def __init__(
        self,
        *,
        base: DirectionBase = "triplet",
        gamma: float = 0.5,
        margin: float = 0.1,
        miner: TripletStrategy = "all",
        alpha: float = 2.0,
        beta: float = 50.0,
        threshold: float = 0.5,
        epsilon: float = 0.1,
        mining: bool = True,
        softmax_scale: float = 1.0,
        include_positive: bool = False,
        proxy_lr_multiplier: float = 1.0,
        num_classes: int | None = None,
        embedding_dim: int | None = None,
    ) -> None:
        super().__init__()
        if base not in DIRECTION_BASES:
            raise ValueError(
                f"Unknown direction base {base!r}; valid choices: {', '.join(DIRECTION_BASES)}"
            )
        if miner not in TRIPLET_STRATEGIES:
            raise ValueError(
                f"Unknown miner {miner!r}; valid choices: {', '.join(TRIPLET_STRATEGIES)}"
            )
        if gamma < 0 or margin < 0 or epsilon < 0 or alpha <= 0 or beta <= 0:
            raise ValueError("gamma, margin, epsilon must be >= 0 and alpha, beta > 0")
        self.base, self.gamma, self.margin, self.miner = base, float(gamma), float(margin), miner
        self.alpha, self.beta, self.threshold = float(alpha), float(beta), float(threshold)
        self.epsilon, self.mining = float(epsilon), bool(mining)
        self.softmax_scale, self.include_positive = float(softmax_scale), bool(include_positive)
        self.proxy_lr_multiplier = float(proxy_lr_multiplier)
        self.num_classes = num_classes
        self.proxies: nn.Parameter | None = None
        if base == "proxy_nca":
            if num_classes is None or embedding_dim is None:
                raise ValueError(
                    "direction with base='proxy_nca' needs num_classes= and embedding_dim= (pass "
                    "them to build_loss)"
                )
            if num_classes < 2:
                raise ValueError("direction with base='proxy_nca' needs num_classes >= 2")
            if proxy_lr_multiplier <= 0:
                raise ValueError(f"proxy_lr_multiplier must be > 0, got {proxy_lr_multiplier}")
            self.proxies = nn.Parameter(reference_proxy_nca_init(num_classes, embedding_dim))

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

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        embeddings = embeddings.to(torch.promote_types(embeddings.dtype, torch.float32))
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
        check_inputs(embeddings, labels, self.num_classes)
        if len(labels) == 0:  # an empty batch: a zero still connected to the graph (zero gradients)
            return embeddings.sum() * 0.0 + self.proxies.sum() * 0.0
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
