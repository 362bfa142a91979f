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

from dmlstudy.losses.base import register_loss
from dmlstudy.losses.interface import PROXY_LR, SCALE, Range
from dmlstudy.losses.proxy_common import MultiProxyLoss, cosine_to_proxies

POSITIVE_BONUS = 1000.0  # official: "1000*" forces the own-class proxies into the top-k


#: proxies per block of the regularizer (:class:`_BlockwiseRegularizer`): a block's logits
#: (512 × C floats) stay in cache. benchmarks/bench_proxy_gml_regularizer.py, one thread, bf16:
#: Omniglot (858 classes × 12, 32-d) 23.7 ms against 80.7 for the one-line form (blocks of 1024
#: alike, of 128 32.8, one block 102.6); CUB's official 100 × 12 at 512-d 2.5 ms against 1.7
#: (its logits fit in cache anyway; a ResNet-50 step there takes hundreds of ms)
REG_BLOCK_ROWS = 512


def proxy_regularizer(
    normalized_proxies: torch.Tensor,
    num_classes: int,
    per_class: int,
    block_rows: int = REG_BLOCK_ROWS,
) -> torch.Tensor:
    """ProxyGML eq. 8: mean over proxies of CE(Σ_{q∈class c} cos(p, q) over c, class(p)).

    ``Σ_{q∈c} p·q = p·(Σ_{q∈c} q)``, so the (C·N)×C logits come from the per-class sums of the
    proxies without the official (C·N)×(C·N) similarity matrix (same values, O(C·N·C·d)), a
    block of ``block_rows`` proxies at a time (:class:`_BlockwiseRegularizer`).

    >>> p = torch.nn.functional.normalize(torch.eye(4), dim=1)  # 2 classes × 2 orthogonal proxies
    >>> round(proxy_regularizer(p, 2, 2, block_rows=3).item(), 4)  # −log(e/(e+1))
    0.3133
    """
    class_sums = normalized_proxies.view(num_classes, per_class, -1).sum(dim=1)
    return _BlockwiseRegularizer.apply(normalized_proxies, class_sums, per_class, block_rows)


class _BlockwiseRegularizer(torch.autograd.Function):
    """``F.cross_entropy(proxies @ class_sums.T, owner)`` computed a block of rows at a time, the
    backward recomputing each block's logits instead of keeping them; matmuls in autocast's
    dtype where it is on (as the one-line form's), softmax and sums in float32 or wider.

    Why not autograd over the one-line form: with Omniglot's 858 classes × 12 proxies its
    logits are 10,296 × 858 floats (35 MB), written and read again by every pass (matmul,
    log-softmax, their backward) each training step; that made the regularizer ~80% of a
    ProxyGML step on the CPU, and ProxyGML's epochs 4× the others'. Blocks that stay in cache
    cost one more matmul and run 3.4× faster there (:data:`REG_BLOCK_ROWS`; same values:
    tests/losses/test_proxy_gml.py; benchmarks/bench_proxy_gml_regularizer.py).
    """

    @staticmethod
    def forward(ctx, proxies, class_sums, per_class, block_rows):  # type: ignore[override]
        device = proxies.device.type
        mm = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None
        acc = torch.promote_types(proxies.dtype, torch.float32)
        with torch.autocast(device, enabled=False):
            p, s = proxies.to(mm or proxies.dtype), class_sums.to(mm or class_sums.dtype)
            total = torch.zeros((), dtype=acc, device=proxies.device)
            for start in range(0, p.shape[0], block_rows):
                logits = (p[start : start + block_rows] @ s.T).to(acc)
                own = _owners(start, logits.shape[0], per_class, logits.device)
                total += (logits.logsumexp(dim=1) - logits.gather(1, own[:, None])[:, 0]).sum()
        ctx.save_for_backward(p, s)
        ctx.per_class, ctx.block_rows, ctx.acc = per_class, block_rows, acc
        ctx.dtypes = proxies.dtype, class_sums.dtype
        return total / p.shape[0]

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        p, s = ctx.saved_tensors  # in the matmul dtype
        acc, rows = ctx.acc, p.shape[0]
        with torch.autocast(p.device.type, enabled=False):
            d_p = torch.empty(p.shape, dtype=acc, device=p.device)
            d_s = torch.zeros(s.shape, dtype=acc, device=p.device)
            scale = grad.to(acc) / rows
            for start in range(0, rows, ctx.block_rows):
                block = p[start : start + ctx.block_rows]
                g = torch.softmax((block @ s.T).to(acc), dim=1)  # d CE/d logits: softmax − 1-hot
                own = _owners(start, block.shape[0], ctx.per_class, g.device)
                g[torch.arange(block.shape[0], device=g.device), own] -= 1
                g = (g * scale).to(p.dtype)
                d_p[start : start + block.shape[0]] = g @ s
                d_s += g.T @ block
        return d_p.to(ctx.dtypes[0]), d_s.to(ctx.dtypes[1]), None, None


def _owners(start: int, rows: int, per_class: int, device: torch.device) -> torch.Tensor:
    """The class of proxies ``start .. start+rows−1`` (class-major layout)."""
    return torch.arange(start, start + rows, device=device) // per_class


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
