"""ProxyGML (Zhu et al., "Fewer is More", NeurIPS 2020; official ``YuehuaZhu/ProxyGML``): N
sub-proxies per class; per sample the top ``k = ⌈r·C·N⌉`` similarities with the own-class proxies
forced in (Eq. 4–5), class logits summed over the kept sub-proxies (Eq. 6), masked softmax
cross-entropy (Eq. 7) plus ``λ·`` the proxy regularizer (Eq. 8).  Keywords ``proxies_per_class``
(N), ``top_ratio`` (r), ``reg_weight`` (λ), ``scale``, ``proxy_lr_multiplier``; where it follows
the official code rather than the paper: docs/losses.md.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F

from dmlstudy.losses.base import register_loss
from dmlstudy.losses.interface import PROXY_LR, SCALE, Range
from dmlstudy.losses.proxy_common import MultiProxyLoss, cosine_to_proxies

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
class ProxyGMLLoss(MultiProxyLoss):
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

    hyperparameter_ranges: ClassVar[dict[str, Range]] = {
        "proxies_per_class": Range(1, 1000),
        "top_ratio": Range(0, 1, low_open=True),
        "reg_weight": Range(0, 100),
        "scale": SCALE,
        "proxy_lr_multiplier": PROXY_LR,
    }

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
        super().__init__(
            num_classes,
            embedding_dim,
            proxy_lr_multiplier,
            per_class=proxies_per_class,
            per_class_keyword="proxies_per_class",
        )
        if not 0 < top_ratio <= 1:
            raise ValueError(f"top_ratio (r) must be in (0, 1], got {top_ratio}")
        self.proxies_per_class = proxies_per_class
        self.top_ratio = top_ratio
        self.reg_weight = reg_weight
        self.scale = scale
        self.top_k = math.ceil(top_ratio * num_classes * proxies_per_class)

    def compute(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        centers = self.normalized_proxies(embeddings.dtype)
        sims = cosine_to_proxies(embeddings, centers, normalized=True)  # B×(C·N)
        ranked = sims.detach().clone()
        rows = torch.arange(sims.shape[0], device=sims.device)
        self.by_class(ranked)[rows, labels] += POSITIVE_BONUS  # in place, through the view
        keep = torch.zeros_like(sims, dtype=torch.bool).scatter(
            1, ranked.topk(self.top_k, dim=1).indices, True
        )
        logits = self.by_class(sims * keep).sum(dim=2) * self.scale
        class_kept = self.by_class(keep).any(dim=2)
        log_prob = torch.log_softmax(logits.masked_fill(~class_kept, float("-inf")), dim=1)
        loss = -log_prob.gather(1, labels[:, None]).mean()
        if self.reg_weight > 0:
            loss = loss + self.reg_weight * proxy_regularizer(
                centers, self.num_classes, self.per_class
            )
        return loss
