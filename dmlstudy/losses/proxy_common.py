"""Building blocks shared by the proxy-based losses (ProxyNCA/++, Proxy-Anchor, ProxyGML,
SoftTriple, ArcFace/CosFace, DAAL, RSW) and the direction regularizer: cosine/squared distances to
proxies, stable ``log(1 + Σ exp)``, the NCA term, the :class:`ProxyLoss` base with its parameter
group and :class:`MultiProxyLoss` (K proxies per class).  Derivations: ``docs/losses.md``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from dmlstudy.losses.interface import DMLLoss, compute_dtype, zero_loss

__all__ = [
    "MultiProxyLoss",
    "ProxyLoss",
    "compute_dtype",
    "cosine_to_proxies",
    "log1p_sum_exp",
    "nca_losses",
    "normalized_sq_distances",
    "reference_proxy_nca_init",
    "zero_loss",
]


def cosine_to_proxies(
    embeddings: torch.Tensor, proxies: torch.Tensor, *, normalized: bool = False, scale: float = 1.0
) -> torch.Tensor:
    """``scale·x̂_i·p̂_c`` (B×C) in :func:`compute_dtype`; ``normalized`` skips re-normalizing
    proxies. The scale multiplies the B×d normalized embeddings before the product (no extra B×C
    pass).

    >>> cosine_to_proxies(torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 3.0], [1.0, 1.0]]))
    tensor([[0.0000, 0.7071]])
    """
    dtype = compute_dtype(embeddings)
    p = proxies.to(dtype) if normalized else F.normalize(proxies.to(dtype), dim=1)
    x = F.normalize(embeddings.to(dtype), dim=1)
    return F.linear(x if scale == 1.0 else x * scale, p).to(dtype)  # .to: autocast may return half


def normalized_sq_distances(embeddings: torch.Tensor, proxies: torch.Tensor) -> torch.Tensor:
    """``D[i, c] = ‖x̂_i − p̂_c‖²`` of L2-normalized rows, computed as ``2 − 2·x̂·p̂`` (B×C).

    >>> x = torch.tensor([[2.0, 0.0]]); p = torch.tensor([[0.0, 3.0], [1.0, 0.0]])
    >>> normalized_sq_distances(x, p)
    tensor([[2., 0.]])
    """
    return (2.0 - 2.0 * cosine_to_proxies(embeddings, proxies)).clamp_min(0.0)


def reference_proxy_nca_init(num_classes: int, embedding_dim: int) -> torch.Tensor:
    """``randn(C, d) / 8``, the proxies of ``dichotomies/proxy-nca`` and of ProxyNCA++'s official
    ``loss.py`` (norm ≈ √d/8), drawn from torch's default generator (the trainer seeds it)."""
    return torch.randn(num_classes, embedding_dim) / 8


def log1p_sum_exp(logits: torch.Tensor, mask: torch.Tensor, dim: int) -> torch.Tensor:
    """``log(1 + Σ_{mask} exp(logits))`` along ``dim``, stable; 0 where the mask is empty.

    >>> log1p_sum_exp(torch.tensor([[0.0, 1000.0]]), torch.tensor([[True, False]]), dim=1)
    tensor([0.6931])
    """
    masked = logits.masked_fill(~mask, float("-inf"))
    shift = masked.amax(dim=dim, keepdim=True).clamp_min(0.0).detach()  # gradient-invariant shift
    total = torch.exp(masked - shift).sum(dim=dim, keepdim=True) + torch.exp(-shift)
    return (shift + torch.log(total)).squeeze(dim)


class ProxyLoss(DMLLoss):
    """Shared plumbing of losses with learnable class representatives (by default the tensor
    ``proxies``, rows are proxies): inputs checked against ``num_classes``/``embedding_dim``, and
    one optimizer group at ``base_lr × proxy_lr_multiplier``.

    ``proxy_group_options`` are optimizer options of the official recipe that go into the proxies'
    parameter group (e.g. Adam ``eps``: a proxy lr multiplier only means what it meant officially
    with the same eps; SGD ignores ``eps``).  ``optimizer_hints`` document the official recipe's
    model-wide settings (keys ``adam_eps``, ``weight_decay``) for the trainer; not applied here.
    """

    proxies: nn.Parameter
    proxy_group_options: ClassVar[dict[str, float]] = {}
    optimizer_hints: ClassVar[dict[str, float]] = {}

    def __init__(self, num_classes: int, embedding_dim: int, proxy_lr_multiplier: float) -> None:
        super().__init__()
        if num_classes < 1 or embedding_dim < 1:
            raise ValueError(
                f"num_classes and embedding_dim must be ≥ 1, got {num_classes}, {embedding_dim}"
            )
        if proxy_lr_multiplier <= 0:
            raise ValueError(f"proxy_lr_multiplier must be > 0, got {proxy_lr_multiplier}")
        self.num_classes = num_classes
        self.embedding_dim = embedding_dim
        self.proxy_lr_multiplier = proxy_lr_multiplier

    @staticmethod
    def official_linear_proxies(embedding_dim: int, count: int) -> nn.Parameter:
        """``count`` proxies (rows) initialised as the official code's d×count ``nn.Linear``-style
        weight, ``kaiming_uniform_(a=√5)``, stored transposed (SoftTriple, ProxyGML)."""
        official_layout = torch.empty(embedding_dim, count)
        nn.init.kaiming_uniform_(official_layout, a=math.sqrt(5))
        return nn.Parameter(official_layout.T.contiguous())

    def expected_inputs(self) -> tuple[int | None, int | None]:
        return self.num_classes, self.embedding_dim

    def proxy_parameters(self) -> list[nn.Parameter]:
        """The learnable class representatives (``[proxies]``; DAAL: its segment vertices)."""
        return [self.proxies]

    def param_groups(self, base_lr: float) -> list[dict[str, Any]]:
        """One group holding :meth:`proxy_parameters` at ``base_lr × proxy_lr_multiplier`` (+
        ``proxy_group_options``)."""
        group = {"params": self.proxy_parameters(), "lr": base_lr * self.proxy_lr_multiplier}
        return [{**group, "name": f"{self.registry_name}.proxies", **self.proxy_group_options}]


class MultiProxyLoss(ProxyLoss):
    """``per_class`` proxies per class (SoftTriple's centres, ProxyGML's sub-proxies): rows
    ``c·K … c·K+K−1`` of ``proxies``, initialised as the official d×(C·K) weight
    (:meth:`ProxyLoss.official_linear_proxies`)."""

    def __init__(
        self,
        num_classes: int,
        embedding_dim: int,
        proxy_lr_multiplier: float,
        *,
        per_class: int,
        per_class_keyword: str,
    ) -> None:
        super().__init__(num_classes, embedding_dim, proxy_lr_multiplier)
        if per_class < 1:
            raise ValueError(f"{per_class_keyword} must be ≥ 1, got {per_class}")
        self.per_class = per_class
        self.proxies = self.official_linear_proxies(embedding_dim, num_classes * per_class)

    def normalized_proxies(self, dtype: torch.dtype) -> torch.Tensor:
        """The proxies L2-normalized, in ``dtype`` ((C·K)×d)."""
        return F.normalize(self.proxies.to(dtype), dim=1)

    def by_class(self, values: torch.Tensor) -> torch.Tensor:
        """``…×(C·K)`` → ``…×C×K`` (a view)."""
        return values.view(*values.shape[:-1], self.num_classes, self.per_class)


def nca_losses(
    logits: torch.Tensor, labels: torch.Tensor, *, include_positive: bool
) -> torch.Tensor:
    """Per-sample ``−logit_y + logsumexp_c logit_c`` (over c ≠ y unless ``include_positive``)."""
    positive = logits.gather(1, labels[:, None]).squeeze(1)
    if include_positive:
        return torch.logsumexp(logits, dim=1) - positive
    others = logits.scatter(1, labels[:, None], float("-inf"))
    return torch.logsumexp(others, dim=1) - positive
