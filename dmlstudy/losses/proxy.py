"""Proxy losses with one proxy per class: ``proxy_nca`` (Movshovitz-Attias et al., ICCV 2017,
Eq. 4, the true class excluded from the denominator), ``proxy_nca_pp`` (Teh et al., ECCV 2020,
Eq. 9, official ``loss.ProxyNCA_prob``) and ``proxy_anchor`` (Kim et al., CVPR 2020, Eq. 4,
official ``losses.Proxy_Anchor``).  ``D`` is the squared L2 distance of L2-normalized vectors
(:func:`normalized_sq_distances`, re-exported for the direction loss).  Keywords, proxy inits and
the official recipes: docs/losses.md.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from dmlstudy.losses.base import register_loss
from dmlstudy.losses.interface import PROXY_LR, SCALE, UNIT_MARGIN, Range
from dmlstudy.losses.proxy_common import (  # re-exported: the direction loss and the tests use them
    ProxyLoss,
    compute_dtype,
    cosine_to_proxies,
    log1p_sum_exp,
    nca_losses,
    normalized_sq_distances,
    reference_proxy_nca_init,
    zero_loss,
)

__all__ = [
    "ProxyAnchorLoss",
    "ProxyLoss",
    "ProxyNCALoss",
    "ProxyNCAPlusPlusLoss",
    "compute_dtype",
    "cosine_to_proxies",
    "log1p_sum_exp",
    "nca_losses",
    "normalized_sq_distances",
    "reference_proxy_nca_init",
    "zero_loss",
]


@register_loss("proxy_nca")
class ProxyNCALoss(ProxyLoss):
    """ProxyNCA (Movshovitz-Attias et al. 2017, eq. 4), one proxy per class.

    ``L = mean_i −log( e^{−s·D(x̂_i,p̂_y)} / Σ_{c≠y} e^{−s·D(x̂_i,p̂_c)} )`` with ``s = softmax_scale``
    (paper: 1).  The loss is unbounded below (it is a log-ratio, not a probability).
    ``include_positive=True`` puts the true class in the denominator (PML ``ProxyNCALoss``).
    No official code exists: proxies are initialised ``randn/8`` as the common reference code
    (``dichotomies/proxy-nca``, the ProxyNCA++ repository's baseline; PML uses N(0, 1), 8× longer,
    which under Adam slows the proxies' angular motion ~8×).  ``proxy_lr_multiplier`` 1 follows
    Proxy-Anchor's official benchmark code for Proxy-NCA.  Needs ``num_classes ≥ 2``.
    """

    hyperparameter_ranges: ClassVar[dict[str, Range]] = {
        "softmax_scale": SCALE,
        "proxy_lr_multiplier": PROXY_LR,
    }

    def __init__(
        self,
        num_classes: int,
        embedding_dim: int,
        *,
        softmax_scale: float = 1.0,
        include_positive: bool = False,
        proxy_lr_multiplier: float = 1.0,
    ) -> None:
        super().__init__(num_classes, embedding_dim, proxy_lr_multiplier)
        if num_classes < 2 and not include_positive:
            raise ValueError(
                "proxy_nca needs num_classes ≥ 2 (its denominator sums over the other classes)"
            )
        self.softmax_scale = softmax_scale
        self.include_positive = include_positive
        self.proxies = nn.Parameter(reference_proxy_nca_init(num_classes, embedding_dim))

    def compute(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        # −s·D = 2s·cos − 2s; the constant cancels in the NCA log-ratio, so the logits are 2s·cos.
        logits = cosine_to_proxies(embeddings, self.proxies, scale=2.0 * self.softmax_scale)
        return nca_losses(logits, labels, include_positive=self.include_positive).mean()


@register_loss("proxy_nca_pp")
class ProxyNCAPlusPlusLoss(ProxyLoss):
    """ProxyNCA++ (Teh et al. 2020, eq. 9; official ``loss.ProxyNCA_prob``).

    ``L = mean_i −log softmax_c(−D(x̂_i, p̂_c)/T)`` over all proxies, ``T = temperature`` (1/9: the
    official code scales x̂ and p̂ by 3 = √(1/T) before the squared distance).  Proxies
    ``randn/8`` as official.  Official CUB config: Adam, proxy lr 4e2 vs base 4e-3 (×1e5,
    "fast-moving proxies"), Adam ``eps=1`` for every group, no weight decay; SOP config uses ×1e4.
    The ×1e5 multiplier only makes sense with ``eps=1`` (the Adam step is then ≈ lr·grad), so the
    proxies' group carries ``eps=1`` and ``weight_decay=0`` (``proxy_group_options``); the
    model-wide ``eps=1`` is an ``optimizer_hints`` entry for the trainer. Omitted here
    (architecture/sampling, not the loss): global max pooling, layer norm, class-balanced sampling,
    the warm-up epoch with a frozen backbone.
    """

    proxy_group_options: ClassVar[dict[str, float]] = {"eps": 1.0, "weight_decay": 0.0}
    optimizer_hints: ClassVar[dict[str, float]] = {"adam_eps": 1.0, "weight_decay": 0.0}

    hyperparameter_ranges: ClassVar[dict[str, Range]] = {
        "temperature": Range(1e-3, 1e3),  # logits are divided by it
        "proxy_lr_multiplier": PROXY_LR,
    }

    def __init__(
        self,
        num_classes: int,
        embedding_dim: int,
        *,
        temperature: float = 1.0 / 9.0,
        proxy_lr_multiplier: float = 1e5,
    ) -> None:
        super().__init__(num_classes, embedding_dim, proxy_lr_multiplier)
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature
        self.proxies = nn.Parameter(reference_proxy_nca_init(num_classes, embedding_dim))

    def compute(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        # −D/T = (2·cos − 2)/T; the constant cancels in the softmax, so the logits are 2·cos/T.
        logits = cosine_to_proxies(embeddings, self.proxies, scale=2.0 / self.temperature)
        return F.cross_entropy(logits, labels)


@register_loss("proxy_anchor")
class ProxyAnchorLoss(ProxyLoss):
    """Proxy-Anchor (Kim et al. 2020, eq. 4; official ``losses.Proxy_Anchor``).

    ``L = 1/|P⁺| Σ_{p∈P⁺} log(1 + Σ_{x∈X⁺_p} e^{−α(s(x,p)−δ)})``
    ``  + 1/|P| Σ_{p∈P} log(1 + Σ_{x∈X⁻_p} e^{α(s(x,p)+δ)})``,
    ``s`` cosine, ``P⁺`` the proxies with a positive in the batch, ``|P| = num_classes``.
    Proxies ``kaiming_normal_(mode="fan_out")``; official trainer: AdamW, proxies at lr ×100,
    weight decay 1e-4 on everything.  With no sample in the batch the loss is a finite zero.
    """

    optimizer_hints: ClassVar[dict[str, float]] = {"weight_decay": 1e-4}

    hyperparameter_ranges: ClassVar[dict[str, Range]] = {
        "alpha": SCALE,
        "margin": UNIT_MARGIN,
        "proxy_lr_multiplier": PROXY_LR,
    }

    def __init__(
        self,
        num_classes: int,
        embedding_dim: int,
        *,
        alpha: float = 32.0,
        margin: float = 0.1,
        proxy_lr_multiplier: float = 100.0,
    ) -> None:
        super().__init__(num_classes, embedding_dim, proxy_lr_multiplier)
        self.alpha = alpha
        self.margin = margin
        self.proxies = nn.Parameter(torch.empty(num_classes, embedding_dim))
        nn.init.kaiming_normal_(self.proxies, mode="fan_out")

    def compute(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cos = cosine_to_proxies(embeddings, self.proxies)
        neg_mask = torch.ones_like(cos, dtype=torch.bool).scatter_(1, labels[:, None], False)
        # Positive term: only the B entries cos[i, y_i] enter, so reduce them per class by scatter.
        pos_logits = -self.alpha * (cos.gather(1, labels[:, None]).squeeze(1) - self.margin)
        shift = torch.zeros(self.num_classes, dtype=cos.dtype, device=cos.device).scatter_reduce(
            0, labels, pos_logits.detach(), reduce="amax", include_self=True
        )  # max(0, max_i logit) per class: a gradient-invariant shift
        pos_sum = torch.exp(-shift).index_add(0, labels, torch.exp(pos_logits - shift[labels]))
        pos = shift + torch.log(pos_sum)  # exactly 0 for proxies without positives
        neg = log1p_sum_exp(self.alpha * (cos + self.margin), neg_mask, dim=0)
        has_pos = torch.zeros(self.num_classes, dtype=torch.bool, device=cos.device).index_fill(
            0, labels, True
        )
        num_with_pos = has_pos.sum()
        return pos.sum() / num_with_pos + neg.sum() / self.num_classes
