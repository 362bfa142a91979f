"""SoftTriple (Qian et al., ICCV 2019; official ``idstcv/SoftTriple``): K centres per class,
relaxed similarity (Eq. 7), ``CE(λ·(S' − δ·1[c = y]), y)`` (Eq. 10) plus ``τ·R``, the centre
regularizer of Eq. 13 as the official code computes it.  Keywords ``centers_per_class`` (K),
``la`` (λ), ``gamma`` (γ), ``tau`` (τ), ``margin`` (δ), ``proxy_lr_multiplier``; derivation and
official recipe: docs/losses.md.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F

from dmlstudy.losses.base import register_loss
from dmlstudy.losses.interface import PROXY_LR, SCALE, UNIT_MARGIN, Range
from dmlstudy.losses.proxy_common import MultiProxyLoss, cosine_to_proxies

REG_EPS = 1e-5  # official: sqrt(2.0 + 1e-5 - 2·sim)


def center_regularizer(
    normalized_centers: torch.Tensor, num_classes: int, per_class: int
) -> torch.Tensor:
    """SoftTriple eq. 13 as in the official code (docs/losses.md); 0 when
    ``per_class == 1``."""
    if per_class < 2:
        return normalized_centers.sum() * 0.0
    grouped = normalized_centers.view(num_classes, per_class, -1)
    sims = grouped @ grouped.transpose(1, 2)  # C×K×K
    upper = torch.triu_indices(per_class, per_class, offset=1, device=sims.device)
    pair_sims = sims[:, upper[0], upper[1]]
    return torch.sqrt(2.0 + REG_EPS - 2.0 * pair_sims).sum() / (
        num_classes * per_class * (per_class - 1)
    )


@register_loss("soft_triple")
class SoftTripleLoss(MultiProxyLoss):
    """SoftTriple loss; defaults are the paper's / official ``train.py`` (K 10, λ 20, γ 0.1, τ 0.2,
    δ 0.01).  ``proxy_lr_multiplier`` 100 = official centre lr 0.01 over model lr 1e-4 (official:
    Adam, ``eps=0.01``, weight decay 1e-4); the centres' group carries ``eps=0.01``
    (``proxy_group_options``), which the multiplier assumes.  Centres: ``kaiming_uniform_(a=√5)`` on
    the official d×(C·K) layout, stored transposed.
    """

    proxy_group_options: ClassVar[dict[str, float]] = {"eps": 0.01}
    optimizer_hints: ClassVar[dict[str, float]] = {"adam_eps": 0.01, "weight_decay": 1e-4}

    hyperparameter_ranges: ClassVar[dict[str, Range]] = {
        "centers_per_class": Range(1, 1000),
        "la": SCALE,
        "gamma": Range(1e-3, 1e3),  # the centres' softmax is scaled by 1/gamma
        "tau": Range(0, 100),
        "margin": UNIT_MARGIN,
        "proxy_lr_multiplier": PROXY_LR,
    }

    def __init__(
        self,
        num_classes: int,
        embedding_dim: int,
        *,
        centers_per_class: int = 10,
        la: float = 20.0,
        gamma: float = 0.1,
        tau: float = 0.2,
        margin: float = 0.01,
        proxy_lr_multiplier: float = 100.0,
    ) -> None:
        super().__init__(
            num_classes,
            embedding_dim,
            proxy_lr_multiplier,
            per_class=centers_per_class,
            per_class_keyword="centers_per_class",
        )
        if gamma <= 0:
            raise ValueError(f"gamma must be > 0, got {gamma}")
        self.centers_per_class = centers_per_class
        self.la = la
        self.gamma = gamma
        self.tau = tau
        self.margin = margin

    def relaxed_similarity(self, embeddings: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
        """``S'`` (B×C) of eq. 7 from raw embeddings and L2-normalized centres."""
        sims = self.by_class(cosine_to_proxies(embeddings, centers, normalized=True))
        return (torch.softmax(sims / self.gamma, dim=2) * sims).sum(dim=2)

    def compute(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        centers = self.normalized_proxies(embeddings.dtype)
        relaxed = self.relaxed_similarity(embeddings, centers)
        with_margin = relaxed.scatter_add(
            1, labels[:, None], relaxed.new_full((len(labels), 1), -self.margin)
        )
        loss = F.cross_entropy(self.la * with_margin, labels)
        if self.tau > 0 and self.centers_per_class > 1:
            loss = loss + self.tau * center_regularizer(
                centers, self.num_classes, self.centers_per_class
            )
        return loss
