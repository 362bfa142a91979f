"""Realigned Softmax Warping (DeMoor & Prevost, arXiv 2408.15656; official
``mdemoor226/Realigned-Softmax-Warping``): Euclidean proxy softmax ``−log softmax_c(−T·w_c)`` on
unnormalized embeddings, the true class's distance warped piecewise (slope ``k1`` plus a detached
margin below ``alpha``, slope ``k2`` above); the last ``phase2_epochs`` epochs use the phase-2
warp.  Keywords, the official recipe and what is not reproduced (phase-2 learning rates):
docs/losses.md.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from dmlstudy.losses.base import register_loss
from dmlstudy.losses.interface import PROXY_LR, SCALE, Range
from dmlstudy.losses.proxy_common import ProxyLoss

__all__ = ["RealignedSoftmaxWarpingLoss", "euclidean_distances", "warp_true_distance"]


def euclidean_distances(x: torch.Tensor, proxies: torch.Tensor) -> torch.Tensor:
    """Pairwise Euclidean distances (B×C) as in the official ``_euclidean_dist`` (clamped at 1e-12).

    >>> euclidean_distances(torch.tensor([[3.0, 4.0]]), torch.zeros(1, 2))
    tensor([[5.]])
    """
    sq = (x * x).sum(1, keepdim=True) + (proxies * proxies).sum(1)[None, :] - 2.0 * x @ proxies.T
    return sq.clamp(min=1e-12).sqrt()


def warp_true_distance(
    d: torch.Tensor, *, alpha: float, k1: float, k2: float, margin: float
) -> torch.Tensor:
    """Warped distance ``w(d)`` of a sample to its own class proxy (before the temperature).

    ``d < alpha``: value ``k1·d + margin·(1−k1)·d`` with gradient ``k1`` (margin term detached);
    ``d >= alpha``: ``k2·d + alpha·(1−k2)``.  Pure and vectorised: also used to plot the warped
    landscape.

    >>> warp_true_distance(torch.tensor([10.0, 30.0]), alpha=28.4, k1=0.93, k2=1.15, margin=1.3)
    tensor([10.2100, 30.2400])
    """
    outward = k1 * d + margin * ((1.0 - k1) * d).detach()
    inward = k2 * d + alpha * (1.0 - k2)
    mask = (d < alpha).detach()
    return torch.where(mask, outward, inward)


@register_loss("rsw")
class RealignedSoftmaxWarpingLoss(ProxyLoss):
    """RSW loss (DeMoor & Prevost 2024, the warped softmax); docs/losses.md.

    Args:
        num_classes, embedding_dim: runtime values (one proxy of ``embedding_dim`` per class).
        temperature, alpha, k1, k2, margin: phase-1 warp (official CUB defaults).
        phase2_epochs: the last this-many epochs run in phase 2 (0 disables phase 2).
        phase2_temperature, phase2_alpha, phase2_k1, phase2_k2: phase-2 warp (official CUB).
        proxy_lr_multiplier: proxies' learning rate = ``base_lr ×`` this (official 1.0 / 0.01).
    """

    metric = "euclidean"
    normalize_embeddings = False
    # Official Adam eps=1.0: the proxy lr multiplier only means what it meant there with that eps.
    proxy_group_options: ClassVar[dict[str, float]] = {"eps": 1.0}

    hyperparameter_ranges: ClassVar[dict[str, Range]] = {
        **{f"{p}temperature": SCALE for p in ("", "phase2_")},  # scales the warped distances
        **{f"{p}alpha": Range(0, 1e3) for p in ("", "phase2_")},
        **{f"{p}{k}": Range(0, 10, low_open=True) for p in ("", "phase2_") for k in ("k1", "k2")},
        "margin": Range(0, 100),
        "proxy_lr_multiplier": PROXY_LR,
    }

    def __init__(
        self,
        num_classes: int,
        embedding_dim: int,
        *,
        temperature: float = 4.525,
        alpha: float = 28.40,
        k1: float = 0.93,
        k2: float = 1.15,
        margin: float = 1.30,
        phase2_epochs: int = 30,
        phase2_temperature: float = 1.0,
        phase2_alpha: float = 24.68,
        phase2_k1: float = 0.95,
        phase2_k2: float = 1.20,
        proxy_lr_multiplier: float = 100.0,
    ) -> None:
        if num_classes < 2 or embedding_dim < 1:
            raise ValueError(
                f"rsw needs num_classes >= 2 and embedding_dim >= 1, got {num_classes}, "
                f"{embedding_dim}"
            )
        if phase2_epochs < 0:
            raise ValueError(
                f"rsw: phase2_epochs must be >= 0 (0 disables phase 2), got {phase2_epochs}"
            )
        super().__init__(num_classes, embedding_dim, float(proxy_lr_multiplier))
        self.margin = float(margin)
        self.phase2_epochs = int(phase2_epochs)
        self.phase_params = {
            1: {"temperature": temperature, "alpha": alpha, "k1": k1, "k2": k2},
            2: {
                "temperature": phase2_temperature,
                "alpha": phase2_alpha,
                "k1": phase2_k1,
                "k2": phase2_k2,
            },
        }
        self.phase = 1
        proxies = torch.empty(num_classes, embedding_dim)
        nn.init.kaiming_normal_(proxies, mode="fan_out")
        self.proxies = nn.Parameter(proxies)

    # ------------------------------------------------------------------ phases
    def set_phase(self, phase: int) -> None:
        """Select the warp parameters of phase 1 or 2 explicitly."""
        if phase not in self.phase_params:
            raise ValueError(f"rsw: phase must be 1 or 2, got {phase!r}")
        self.phase = phase

    def schedule(self, epoch: int, num_epochs: int, lr_drops: int | None = None) -> None:
        """Phase 2 for the last ``phase2_epochs`` epochs (0-based ``epoch``), as the official
        trainer; under the plateau rule (``lr_drops`` given) from the first lr drop on, which is
        where the official phase 2 lowers the learning rates (``phase2_epochs: 0`` disables it)."""
        if lr_drops is not None:
            self.set_phase(2 if self.phase2_epochs and lr_drops >= 1 else 1)
            return
        if self.phase2_epochs >= num_epochs:
            raise ValueError(
                f"rsw: phase2_epochs={self.phase2_epochs} leaves no phase-1 epoch out of "
                f"num_epochs={num_epochs}; set the rsw hyper-parameter phase2_epochs below "
                "num_epochs (0 disables phase 2)"
            )
        self.set_phase(2 if epoch >= num_epochs - self.phase2_epochs else 1)

    @property
    def current(self) -> dict[str, float]:
        """The warp parameters of the current phase (temperature, alpha, k1, k2)."""
        return self.phase_params[self.phase]

    # ------------------------------------------------------------------ loss
    def warped_logits(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``T·w_c`` for every sample and class (B×C); the loss is CE of their negatives."""
        p = self.current
        d = euclidean_distances(embeddings, self.proxies.to(embeddings.dtype))
        idx = labels.long()[:, None]
        w_y = warp_true_distance(
            d.gather(1, idx), alpha=p["alpha"], k1=p["k1"], k2=p["k2"], margin=self.margin
        )
        return p["temperature"] * d.scatter(1, idx, w_y)

    def compute(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(-self.warped_logits(embeddings, labels), labels)
