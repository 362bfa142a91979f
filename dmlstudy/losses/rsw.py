"""Realigned Softmax Warping (RSW): DeMoor & Prevost, arXiv 2408.15656.

Euclidean proxy softmax on **unnormalized** embeddings, one proxy per class.  The distance to the
true class's proxy ``d_y`` is warped piecewise before the softmax (paper Sec. 3, "warp"):

* ``d_y <  alpha``: outward warp with slope ``k1 < 1``; the value carries an extra margin term
  that is *detached*, ``w = k1·d_y + m·(1 − k1)·sg(d_y)`` (``sg`` = stop-gradient);
* ``d_y >= alpha``: inward warp ``w = k2·d_y + alpha·(1 − k2)`` with ``k2 > 1``;

other classes keep ``w_c = d_c``.  The loss is ``−log softmax_c(−T·w_c)[y]`` averaged over the
batch. Everything follows the official code (``Image-Retrieval/Model.py``, ``WarpLoss._Warp`` /
``_embedding`` / ``_euclidean_dist`` of mdemoor226/Realigned-Softmax-Warping), including the
Euclidean distance ``sqrt(clamp(‖x‖² + ‖p‖² − 2x·p, 1e-12))`` and the proxy initialisation
``kaiming_normal_(mode="fan_out")`` on the (C, d) proxy matrix.

Two phases (official ``config.json`` "followup", CUB): the last ``phase2_epochs`` epochs use
``T, alpha, k1, k2 = 1.0, 24.68, 0.95, 1.20`` (the margin ``m`` is kept).  The switch happens in
:meth:`schedule` from the trainer's epoch counter or explicitly through :meth:`set_phase`.  The
official code also lowers the learning rates in phase 2 (model 0.01 → 0.001, proxies 1.0 → 5e-4);
that is the optimizer's business, not the loss's, and is NOT done here.  Official optimizer
hints: Adam with ``eps=1.0``, weight decay 1e-7, proxy lr 1.0 vs model 0.01 (multiplier 100),
gradient value clipping at 10 on the model.  Proxies are initialised from torch's default
generator, like ``nn.Linear`` weights (the trainer seeds it).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dmlstudy.losses.base import DMLLoss, register_loss
from dmlstudy.losses.proxy_common import compute_dtype

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
class RealignedSoftmaxWarpingLoss(DMLLoss):
    """RSW loss (DeMoor & Prevost 2024, Eq. of the warped softmax); see the module docstring.

    Args:
        num_classes, embedding_dim: runtime values (one proxy of ``embedding_dim`` per class).
        temperature, alpha, k1, k2, margin: phase-1 warp (official CUB defaults).
        phase2_epochs: the last this-many epochs run in phase 2 (0 disables phase 2).
        phase2_temperature, phase2_alpha, phase2_k1, phase2_k2: phase-2 warp (official CUB).
        proxy_lr_multiplier: proxies' learning rate = ``base_lr ×`` this (official 1.0 / 0.01).
    """

    metric = "euclidean"
    normalize_embeddings = False

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
        super().__init__()
        if num_classes < 2 or embedding_dim < 1:
            raise ValueError(
                f"rsw needs num_classes >= 2 and embedding_dim >= 1, got {num_classes}, "
                f"{embedding_dim}"
            )
        if phase2_epochs < 0:
            raise ValueError(
                f"rsw: phase2_epochs must be >= 0 (0 disables phase 2), got {phase2_epochs}"
            )
        self.num_classes = num_classes
        self.embedding_dim = embedding_dim
        self.margin = float(margin)
        self.phase2_epochs = int(phase2_epochs)
        self.proxy_lr_multiplier = float(proxy_lr_multiplier)
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

    def schedule(self, epoch: int, num_epochs: int) -> None:
        """Phase 2 for the last ``phase2_epochs`` epochs (0-based ``epoch``), as the official
        trainer."""
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

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        embeddings = embeddings.to(compute_dtype(embeddings))  # bf16 (autocast) → float32
        if embeddings.ndim != 2 or embeddings.shape[1] != self.embedding_dim:
            raise ValueError(
                f"rsw expects embeddings of shape (B, {self.embedding_dim}), got "
                f"{tuple(embeddings.shape)}"
            )
        if embeddings.shape[0] == 0:
            raise ValueError(
                "rsw: empty batch (no embeddings); the sampler must yield at least one sample"
            )
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
            raise ValueError(
                f"rsw: labels must lie in 0..{self.num_classes - 1} (contiguous class ids)"
            )
        return F.cross_entropy(-self.warped_logits(embeddings, labels), labels.long())

    def param_groups(self, base_lr: float) -> list[dict[str, Any]]:
        # The official recipe trains with Adam eps=1.0; the proxy lr multiplier only means what it
        # meant there with that eps, so the proxies' group carries it (Adam/AdamW honour it).
        return [
            {
                "params": [self.proxies],
                "lr": base_lr * self.proxy_lr_multiplier,
                "eps": 1.0,
                "name": "rsw.proxies",
            }
        ]
