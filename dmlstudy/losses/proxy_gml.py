"""ProxyGML (Zhu, Yang, Deng, Liu, "Fewer is More: A Deep Graph Metric Learning Perspective Using
Fewer Proxies", NeurIPS 2020; official code ``YuehuaZhu/ProxyGML`` ``loss/ProxyGML.py``).

Each class has ``N`` sub-proxies (rows ``c·N … c·N+N−1`` of ``proxies``).  For a sample, the
similarities to all C·N proxies form a directed graph; only the top ``k = ⌈r·C·N⌉`` edges are
kept, with the sample's own-class proxies forced in (eq. 4–5).  The class logit is the sum of the
kept similarities of that class's sub-proxies (reverse label propagation, eq. 6) and the loss is a
softmax cross-entropy restricted to classes with at least one kept sub-proxy (eq. 7).  A
regularizer (eq. 8) is the cross-entropy of every proxy against its own class, its class logits
being its summed cosine similarity to each class's sub-proxies:
``L = L_cls + λ·L_reg``.

Follows the official code where it is more specific than the paper: the cosine of the
L2-normalized embedding (normalized here; the official model normalizes its output) with the
normalized proxies; positives are forced into the top-k by a +1000 bonus (so with ``k < N`` only the
k most similar own-class proxies are kept); the softmax scale is 1.  Two numerical details differ
on purpose: the official masked softmax ``exp(l)·m / (1e-8 + Σ exp(l)·m)`` and ``log(p + 1e-20)``
are computed here as an exact masked log-softmax (differences below 1e-8), and the class mask is
"has a kept sub-proxy" instead of the official "logit ≠ 0" (they differ only when kept
similarities sum to exactly 0).
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F

from dmlstudy.losses.base import register_loss
from dmlstudy.losses.proxy_common import (
    ProxyLoss,
    check_inputs,
    compute_dtype,
    cosine_to_proxies,
    zero_loss,
)

POSITIVE_BONUS = 1000.0  # official: "1000*" forces the own-class proxies into the top-k


def proxy_regularizer(
    normalized_proxies: torch.Tensor, num_classes: int, per_class: int
) -> torch.Tensor:
    """ProxyGML eq. 8: mean over proxies of CE(Σ_{q∈class c} cos(p, q) over c, class(p)).

    ``Σ_{q∈c} p·q = p·(Σ_{q∈c} q)``, so the (C·N)×C logits come from the per-class sums of the
    proxies without the official (C·N)×(C·N) similarity matrix (same values, O(C·N·C·d)).
    """
    class_sums = normalized_proxies.view(num_classes, per_class, -1).sum(dim=1)
    logits = normalized_proxies @ class_sums.T
    targets = torch.arange(num_classes, device=logits.device).repeat_interleave(per_class)
    return F.cross_entropy(logits, targets)


@register_loss("proxy_gml")
class ProxyGMLLoss(ProxyLoss):
    """ProxyGML loss; defaults are the official CUB/Cars command line (SOP: ``proxies_per_class=1``,
    ``reg_weight=0``, centre lr 0.3).  ``proxy_lr_multiplier`` 300 = official centre lr 0.03 over
    model lr 1e-4 (official: Adam, ``eps=0.01``, weight decay 1e-4 on all parameters); the proxies'
    group carries ``eps=0.01`` (``proxy_group_options``), which the multiplier assumes.
    Proxies: ``kaiming_uniform_(a=√5)`` on the official d×(C·N) layout, stored transposed.
    Memory: the batch term is B×(C·N); the regularizer's logits are (C·N)×C, so at SOP scale use the
    official SOP setting (N 1, λ 0) — the official code needs (C·N)² there.
    """

    proxy_group_options: ClassVar[dict[str, float]] = {"eps": 0.01}
    optimizer_hints: ClassVar[dict[str, float]] = {"adam_eps": 0.01, "weight_decay": 1e-4}

    def __init__(
        self,
        num_classes: int,
        embedding_dim: int,
        *,
        proxies_per_class: int = 12,
        top_ratio: float = 0.05,
        reg_weight: float = 0.3,
        scale: float = 1.0,
        proxy_lr_multiplier: float = 300.0,
    ) -> None:
        super().__init__(num_classes, embedding_dim, proxy_lr_multiplier)
        if proxies_per_class < 1:
            raise ValueError(f"proxies_per_class must be ≥ 1, got {proxies_per_class}")
        if not 0 < top_ratio <= 1:
            raise ValueError(f"top_ratio (r) must be in (0, 1], got {top_ratio}")
        self.proxies_per_class = proxies_per_class
        self.top_ratio = top_ratio
        self.reg_weight = reg_weight
        self.scale = scale
        self.top_k = math.ceil(top_ratio * num_classes * proxies_per_class)
        self.proxies = self.official_linear_proxies(embedding_dim, num_classes * proxies_per_class)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        check_inputs(embeddings, labels, self.num_classes)
        centers = F.normalize(self.proxies.to(compute_dtype(embeddings)), dim=1)
        if embeddings.shape[0] == 0:
            return zero_loss(embeddings, self.proxies)
        n, c = self.proxies_per_class, self.num_classes
        sims = cosine_to_proxies(embeddings, centers, normalized=True)  # B×(C·N)
        ranked = sims.detach().clone()
        ranked.view(-1, c, n)[torch.arange(sims.shape[0], device=sims.device), labels] += (
            POSITIVE_BONUS
        )
        keep = torch.zeros_like(sims, dtype=torch.bool).scatter(
            1, ranked.topk(self.top_k, dim=1).indices, True
        )
        logits = (sims * keep).view(-1, c, n).sum(dim=2) * self.scale
        class_kept = keep.view(-1, c, n).any(dim=2)
        log_prob = torch.log_softmax(logits.masked_fill(~class_kept, float("-inf")), dim=1)
        loss = -log_prob.gather(1, labels[:, None]).mean()
        if self.reg_weight > 0:
            loss = loss + self.reg_weight * proxy_regularizer(centers, c, n)
        return loss
