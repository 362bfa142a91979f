"""DAAL — Density-Aware Adaptive Line margin loss (Gebrerufael et al., arXiv 2410.05438): the
study's own reconstruction (the paper's equations were not available).  Class c is the segment
``[a_c, b_c]``: a margin softmax over point-to-segment distances, an elastic length term
``(‖b_c − a_c‖ − κ·σ_c)²`` (σ_c the running std along the segment, κ = √12) and a density hinge
``[1/12 − Var_c(t)]_+``; ``prototype="point"`` is the point-proxy ablation.  Both spreads are
unbiased (ddof 1) variances over the classes with ≥ 2 samples in the batch, the running σ an EMA
of them: random batches hold mostly 2 samples per class, whose ddof-0 variance is half the true
one.  Every choice and its reason: docs/losses.md (section daal).
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from dmlstudy.losses.base import register_loss
from dmlstudy.losses.interface import PROXY_LR, SCALE, UNIT_MARGIN, Range
from dmlstudy.losses.proxy_common import ProxyLoss

__all__ = ["DensityAwareAdaptiveLineLoss", "segment_projection"]

_EPS = 1e-12
UNIFORM_KAPPA = math.sqrt(12.0)  # std of the uniform law on a segment of length L: L/√12


def segment_projection(
    x: torch.Tensor, a: torch.Tensor, b: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Distances (B×C) from ``x`` (B×d) to the segments ``[a_c, b_c]`` (C×d), and the unclamped
    ``t``.

    Memory O(B·C) (inner products only, no B×C×d tensor).  A segment of length 0 gives ``t = 0``
    and the point distance ``‖x − a_c‖``.

    >>> d, t = segment_projection(torch.tensor([[0.5, 1.0], [3.0, 0.0]]), torch.zeros(1, 2),
    ...                           torch.tensor([[1.0, 0.0]]))
    >>> d.squeeze(1).tolist(), t.squeeze(1).tolist()
    ([1.0, 2.0], [0.5, 3.0])
    """
    v = b - a
    length_sq = (v * v).sum(1)  # C
    xa = x @ v.T - (a * v).sum(1)[None, :]  # <x - a_c, v_c>, B×C
    t = xa / length_sq.clamp(min=_EPS)[None, :]
    tc = t.clamp(0.0, 1.0)
    x_minus_a_sq = (x * x).sum(1, keepdim=True) + (a * a).sum(1)[None, :] - 2.0 * x @ a.T
    dist_sq = x_minus_a_sq - 2.0 * tc * xa + tc * tc * length_sq[None, :]
    return dist_sq.clamp(min=_EPS).sqrt(), t


def _per_class_variance(
    x: torch.Tensor, labels: torch.Tensor, num_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class sample counts (C) and the unbiased (ddof 1) variance, the squared distances to
    the class mean summed over the rows and divided by ``n − 1`` (C; 0 for a class with < 2
    samples, which callers leave out).

    >>> _per_class_variance(torch.tensor([[0.0], [2.0], [5.0]]), torch.tensor([0, 0, 1]), 2)
    (tensor([2, 1]), tensor([2., 0.]))
    """
    counts = torch.bincount(labels, minlength=num_classes)
    denom = counts.clamp(min=1).to(x.dtype)
    means = torch.zeros(num_classes, x.shape[1], dtype=x.dtype, device=x.device).index_add(
        0, labels, x
    )
    means = means / denom[:, None]
    sq = ((x - means[labels]) ** 2).sum(1)
    total = torch.zeros(num_classes, dtype=x.dtype, device=x.device).index_add(0, labels, sq)
    return counts, total / (counts - 1).clamp(min=1).to(x.dtype)


@register_loss("daal")
class DensityAwareAdaptiveLineLoss(ProxyLoss):
    """Segment-prototype margin softmax + elastic length + density terms (the reconstruction of
    docs/losses.md, section daal).

    Args:
        num_classes, embedding_dim: runtime values.
        prototype: ``"segment"`` (two vertices per class) or ``"point"`` (one; the ablation).
        scale, margin: ``s`` and ``m`` of the margin softmax on distances.
        elastic, elastic_weight, kappa, spread_momentum: the elastic length term (λ_len, κ, β).
        density, density_weight: the density term (λ_den).
        init_length: initial segment length (segment prototype only).
        proxy_lr_multiplier: vertices' learning rate = ``base_lr ×`` this.
    """

    metric = "cosine"
    normalize_embeddings = True

    hyperparameter_ranges: ClassVar[dict[str, Range]] = {
        "scale": SCALE,
        "margin": UNIT_MARGIN,
        "elastic_weight": Range(0, 100),
        "kappa": Range(0, 100, low_open=True),
        "spread_momentum": Range(0, 1, low_open=True),
        "density_weight": Range(0, 100),
        "init_length": Range(0, 2),
        "proxy_lr_multiplier": PROXY_LR,
    }

    def __init__(
        self,
        num_classes: int,
        embedding_dim: int,
        *,
        prototype: Literal["segment", "point"] = "segment",
        scale: float = 16.0,
        margin: float = 0.2,
        elastic: bool = True,
        elastic_weight: float = 1.0,
        kappa: float = UNIFORM_KAPPA,
        spread_momentum: float = 0.1,
        density: bool = True,
        density_weight: float = 1.0,
        init_length: float = 0.1,
        proxy_lr_multiplier: float = 100.0,
    ) -> None:
        if prototype not in ("segment", "point"):
            raise ValueError(f"daal: prototype must be 'segment' or 'point', got {prototype!r}")
        if prototype == "point" and (elastic or density):
            raise ValueError(
                "daal: prototype='point' has no segment; set elastic=False and density=False"
            )
        if num_classes < 2 or embedding_dim < 1:
            raise ValueError(
                f"daal needs num_classes >= 2 and embedding_dim >= 1, got {num_classes}, "
                f"{embedding_dim}"
            )
        if not 0.0 < spread_momentum <= 1.0:
            raise ValueError(f"daal: spread_momentum must be in (0, 1], got {spread_momentum}")
        super().__init__(num_classes, embedding_dim, float(proxy_lr_multiplier))
        self.prototype = prototype
        self.scale, self.margin = float(scale), float(margin)
        self.elastic, self.elastic_weight, self.kappa = (
            bool(elastic),
            float(elastic_weight),
            float(kappa),
        )
        self.spread_momentum = float(spread_momentum)
        self.density, self.density_weight = bool(density), float(density_weight)

        centres = F.normalize(torch.randn(num_classes, embedding_dim), dim=1)
        self.vertices_a = nn.Parameter(centres.clone())
        if prototype == "segment":
            direction = F.normalize(torch.randn(num_classes, embedding_dim), dim=1) * (
                init_length / 2
            )
            self.vertices_a.data -= direction
            self.vertices_b = nn.Parameter(centres + direction)
        else:
            self.vertices_b = None
        self.register_buffer("running_spread", torch.zeros(num_classes))
        self.register_buffer("spread_seen", torch.zeros(num_classes, dtype=torch.bool))

    def segments(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The vertices ``(a, b)``; ``b`` is ``a`` itself for the point prototype."""
        return self.vertices_a, (
            self.vertices_b if self.vertices_b is not None else self.vertices_a
        )

    @torch.no_grad()
    def _update_spread(self, x: torch.Tensor, labels: torch.Tensor) -> None:
        """Running std along each batch class's segment direction ``u_c`` (item 3): the square
        root of an EMA of the class's unbiased batch variances (an EMA of batch stds would
        converge to E[s] < σ: ≈ 0.82σ at 2 samples per class, 0.58σ with ddof 0)."""
        a, b = self.segments()
        u = F.normalize((b - a).to(x.dtype), dim=1)  # a zero-length segment gives u = 0
        along = (x * u[labels]).sum(1, keepdim=True)  # ⟨x_i, u_{y_i}⟩; its class variance
        counts, spread_sq = _per_class_variance(along, labels, self.num_classes)
        ok = counts >= 2
        var = spread_sq.clamp(min=0).to(self.running_spread.dtype)
        beta = torch.where(self.spread_seen, self.spread_momentum, 1.0).to(var.dtype)
        updated = ((1 - beta) * self.running_spread**2 + beta * var).sqrt()
        self.running_spread.copy_(torch.where(ok, updated, self.running_spread))
        self.spread_seen |= ok

    def proxy_parameters(self) -> list[nn.Parameter]:
        return [p for p in (self.vertices_a, self.vertices_b) if p is not None]

    def compute(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        x = F.normalize(embeddings, dim=1)
        a, b = (v.to(x.dtype) for v in self.segments())
        dist, t = segment_projection(x, a, b)
        logits = -self.scale * (
            dist + self.margin * F.one_hot(labels, self.num_classes).to(x.dtype)
        )
        loss = F.cross_entropy(logits, labels)
        if self.training and self.elastic:
            self._update_spread(x.detach(), labels)
        if self.elastic:
            loss = loss + self.elastic_weight * self.elastic_term(labels)
        if self.density:
            loss = loss + self.density_weight * self.density_term(t, labels)
        return loss

    def elastic_term(self, labels: torch.Tensor) -> torch.Tensor:
        """``mean_c (‖b_c − a_c‖ − κ·σ_c)²`` over batch classes whose spread has been observed."""
        a, b = self.segments()
        classes = labels.unique()
        classes = classes[self.spread_seen[classes]]
        length = (b[classes] - a[classes]).norm(dim=1)
        sq = (length - self.kappa * self.running_spread[classes].to(length.dtype)) ** 2
        return sq.mean() if classes.numel() else length.sum() * 0.0

    def density_term(self, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``mean_c [1/12 − Var_c(t)]_+`` over batch classes with ≥ 2 samples (unclamped own-class
        t; ``Var`` unbiased, ddof 1: its expectation is 1/12 for a class uniform on its
        segment at any sample count)."""
        t_own = t.gather(1, labels[:, None])
        counts, var = _per_class_variance(t_own, labels, self.num_classes)
        ok = counts >= 2
        return F.relu(1.0 / 12.0 - var[ok]).mean() if bool(ok.any()) else t_own.sum() * 0.0
