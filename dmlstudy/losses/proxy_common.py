"""Building blocks shared by the proxy-based losses (ProxyNCA/++, Proxy-Anchor, ProxyGML,
SoftTriple, ArcFace/CosFace) and the direction regularizer: cosine/squared distances to proxies,
input checks, stable ``log(1 + Σ exp)``, the NCA term and the :class:`ProxyLoss` base with its
parameter group.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from dmlstudy.losses.base import DMLLoss


def compute_dtype(embeddings: torch.Tensor) -> torch.dtype:
    """float32 for half-precision inputs (exp/log of scaled logits need it), else their dtype."""
    return torch.promote_types(embeddings.dtype, torch.float32)


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


def check_inputs(embeddings: torch.Tensor, labels: torch.Tensor, num_classes: int) -> None:
    """Raise a clear error for embeddings/labels a proxy loss cannot use (labels must be 0..C-1)."""
    if embeddings.dim() != 2:
        raise ValueError(f"embeddings must be B×d, got shape {tuple(embeddings.shape)}")
    if labels.dim() != 1 or labels.shape[0] != embeddings.shape[0]:
        raise ValueError(
            f"labels must be a 1-D tensor of length {embeddings.shape[0]}, got shape "
            f"{tuple(labels.shape)}"
        )
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise TypeError(f"labels must be an integer tensor, got {labels.dtype}")
    if labels.dtype != torch.long:  # gather/scatter/one_hot/cross_entropy need int64 indices
        raise TypeError(
            f"labels must be int64 (torch.long) class ids, got {labels.dtype}; pass labels.long()"
        )
    if labels.numel() and bool(((labels < 0) | (labels >= num_classes)).any()):
        raise ValueError(
            f"labels must be contiguous class ids in 0..{num_classes - 1} "
            f"(num_classes={num_classes}); got min {int(labels.min())}, max {int(labels.max())}. "
            "Remap labels per split or pass the right num_classes to build_loss."
        )


def zero_loss(*tensors: torch.Tensor) -> torch.Tensor:
    """A finite zero connected to ``tensors`` (so backward gives zero gradients, never NaN)."""
    return sum(
        (t.sum() * 0.0 for t in tensors),
        torch.zeros((), dtype=tensors[0].dtype, device=tensors[0].device),
    )


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
    """Shared plumbing of losses with a learnable ``proxies`` tensor (rows are proxies).

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

    def param_groups(self, base_lr: float) -> list[dict[str, Any]]:
        """One group holding ``proxies`` at ``base_lr × proxy_lr_multiplier`` (+
        ``proxy_group_options``)."""
        group = {"params": [self.proxies], "lr": base_lr * self.proxy_lr_multiplier}
        return [{**group, "name": f"{self.registry_name}.proxies", **self.proxy_group_options}]


def nca_losses(
    logits: torch.Tensor, labels: torch.Tensor, *, include_positive: bool
) -> torch.Tensor:
    """Per-sample ``−logit_y + logsumexp_c logit_c`` (over c ≠ y unless ``include_positive``)."""
    positive = logits.gather(1, labels[:, None]).squeeze(1)
    if include_positive:
        return torch.logsumexp(logits, dim=1) - positive
    others = logits.scatter(1, labels[:, None], float("-inf"))
    return torch.logsumexp(others, dim=1) - positive
