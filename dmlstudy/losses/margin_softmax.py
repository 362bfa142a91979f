"""Margin-softmax baselines, one learnable class weight per class (``proxies``): ``arcface``
(Deng et al., CVPR 2019, Eq. 3: target logit ``s·cos(θ_y + m)``, insightface's ``cos θ − m·sin m``
where ``θ + m > π``) and ``cosface`` (Wang et al., CVPR 2018, Eq. 4: ``s·(cos θ_y − m)``); other
classes get ``s·cos θ_c``, the loss is the mean cross-entropy.  Keywords ``margin_degrees`` /
``margin``, ``scale``, ``proxy_lr_multiplier``; weights N(0, 0.01²) as insightface:
docs/losses.md.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from dmlstudy.losses.base import register_loss
from dmlstudy.losses.interface import PROXY_LR, SCALE, UNIT_MARGIN, Range
from dmlstudy.losses.proxy_common import ProxyLoss, cosine_to_proxies

WEIGHT_INIT_STD = 0.01


class MarginSoftmaxLoss(ProxyLoss):
    """Shared part: cosine logits, a target-logit modification, scale, cross-entropy."""

    def __init__(
        self, num_classes: int, embedding_dim: int, *, scale: float, proxy_lr_multiplier: float
    ) -> None:
        super().__init__(num_classes, embedding_dim, proxy_lr_multiplier)
        self.scale = scale
        self.proxies = nn.Parameter(torch.randn(num_classes, embedding_dim) * WEIGHT_INIT_STD)

    def target_logit(self, cos_target: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def compute(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cos = cosine_to_proxies(embeddings, self.proxies)
        cos_target = cos.gather(1, labels[:, None])
        logits = cos.scatter(1, labels[:, None], self.target_logit(cos_target))
        return F.cross_entropy(self.scale * logits, labels)


@register_loss("arcface")
class ArcFaceLoss(MarginSoftmaxLoss):
    """ArcFace; ``margin_degrees`` 28.6 (= 0.5 rad, the paper's m) and ``scale`` 64 as published."""

    hyperparameter_ranges: ClassVar[dict[str, Range]] = {
        "margin_degrees": Range(0, 180),
        "scale": SCALE,
        "proxy_lr_multiplier": PROXY_LR,
    }

    def __init__(
        self,
        num_classes: int,
        embedding_dim: int,
        *,
        margin_degrees: float = 28.6,
        scale: float = 64.0,
        proxy_lr_multiplier: float = 1.0,
    ) -> None:
        super().__init__(
            num_classes, embedding_dim, scale=scale, proxy_lr_multiplier=proxy_lr_multiplier
        )
        if not 0 <= margin_degrees < 180:
            raise ValueError(f"margin_degrees must be in [0, 180), got {margin_degrees}")
        self.margin_degrees = margin_degrees
        self.margin = math.radians(margin_degrees)

    def target_logit(self, cos_target: torch.Tensor) -> torch.Tensor:
        """``cos(θ + m)`` for ``θ ≤ π − m``, else ``cos θ − m·sin m`` (official insightface)."""
        m = self.margin
        # cos(θ+m) = cos θ cos m − sin θ sin m, with sin θ = sqrt(1 − cos²θ) (θ ∈ [0, π]); the clamp
        # keeps the square root differentiable at cos θ = ±1.
        sin = torch.sqrt((1.0 - cos_target * cos_target).clamp_min(1e-12))
        shifted = cos_target * math.cos(m) - sin * math.sin(m)
        return torch.where(
            cos_target >= math.cos(math.pi - m), shifted, cos_target - m * math.sin(m)
        )


@register_loss("cosface")
class CosFaceLoss(MarginSoftmaxLoss):
    """CosFace; ``margin`` 0.35 and ``scale`` 64 as published."""

    hyperparameter_ranges: ClassVar[dict[str, Range]] = {
        "margin": UNIT_MARGIN,
        "scale": SCALE,
        "proxy_lr_multiplier": PROXY_LR,
    }

    def __init__(
        self,
        num_classes: int,
        embedding_dim: int,
        *,
        margin: float = 0.35,
        scale: float = 64.0,
        proxy_lr_multiplier: float = 1.0,
    ) -> None:
        super().__init__(
            num_classes, embedding_dim, scale=scale, proxy_lr_multiplier=proxy_lr_multiplier
        )
        self.margin = margin

    def target_logit(self, cos_target: torch.Tensor) -> torch.Tensor:
        """``cos θ − m``."""
        return cos_target - self.margin
