"""The loss interface: every loss is a :class:`DMLLoss` whose final ``forward(embeddings,
labels)`` checks the batch once (:func:`check_batch`), computes half-precision inputs in float32
(:func:`compute_dtype`) and calls the loss's own ``compute(embeddings, labels)``.  The registry
lives in :mod:`dmlstudy.losses.base`.  Details of every loss: docs/losses.md.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, final

import torch
from torch import nn

__all__ = [
    "DMLLoss",
    "Metric",
    "Range",
    "check_batch",
    "check_label_range",
    "compute_dtype",
    "labels_checked_on_host",
    "zero_loss",
]

Metric = Literal["cosine", "euclidean"]


@dataclass(frozen=True)
class Range:
    """The values a hyper-parameter can sensibly take (``low_open``: ``low`` itself excluded).

    Bounds are generous: they reject what cannot train (a temperature of 0, a scale of 1e30 that
    makes the loss ~1e30 from the first step), not what a search might try. ``beyond`` says what
    a value outside means when it is not "cannot train" (a bound past which every value trains
    exactly as the bound: the parameter's own limit for the tuning campaign's boundary rule).

    >>> r = Range(0, 1e3, low_open=True)
    >>> 0 in r, 64 in r, 1e30 in r, str(r)
    (False, True, False, '(0, 1000]')
    """

    low: float
    high: float
    low_open: bool = False
    beyond: str = "a value that cannot train"

    def __contains__(self, value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return True  # types are checked elsewhere
        above = value > self.low if self.low_open else value >= self.low
        return above and value <= self.high

    def __str__(self) -> str:
        return f"{'(' if self.low_open else '['}{self.low:g}, {self.high:g}]"


#: Shared ranges: a positive scale of logits (s, α, λ, 1/T: published values 1–64; up to 1e4, which
#: the numerically stable losses still compute), a margin on
#: distances or cosines of unit vectors, a learning-rate multiplier of proxies (published ×1–×1e5).
SCALE = Range(0, 1e4, low_open=True)
UNIT_MARGIN = Range(0, 2)
PROXY_LR = Range(0, 1e7, low_open=True)

#: ``num_classes`` that the labels of the current context were checked against on the host
#: (:func:`labels_checked_on_host`), else None.
_HOST_CHECKED: ContextVar[int | None] = ContextVar("labels_checked_on_host", default=None)


def compute_dtype(embeddings: torch.Tensor) -> torch.dtype:
    """float32 for half-precision inputs (exp/log of scaled logits need it), else their dtype.

    >>> compute_dtype(torch.zeros(1, dtype=torch.bfloat16)), compute_dtype(torch.zeros(1).double())
    (torch.float32, torch.float64)
    """
    return torch.promote_types(embeddings.dtype, torch.float32)


def check_batch(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    *,
    num_classes: int | None = None,
    embedding_dim: int | None = None,
    owner: str = "loss",
) -> torch.Tensor:
    """Raise a clear error for a batch a loss cannot use; return the labels as int64.

    Labels must be a 1-D integer tensor of length B (int32 is widened); with ``num_classes`` they
    must be class ids in 0..C−1, with ``embedding_dim`` the embeddings must be B×d.

    >>> check_batch(torch.zeros(2, 3), torch.tensor([0, 1], dtype=torch.int32)).dtype
    torch.int64
    """
    if embeddings.dim() != 2:
        raise ValueError(f"{owner}: embeddings must be B×d, got shape {tuple(embeddings.shape)}")
    if embedding_dim is not None and embeddings.shape[1] != embedding_dim:
        raise ValueError(
            f"{owner} expects embeddings of shape (B, {embedding_dim}), got "
            f"{tuple(embeddings.shape)}"
        )
    if labels.dim() != 1 or labels.shape[0] != embeddings.shape[0]:
        raise ValueError(
            f"{owner}: labels must be a 1-D tensor of length {embeddings.shape[0]}, got shape "
            f"{tuple(labels.shape)}"
        )
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise TypeError(f"{owner}: labels must be an integer tensor, got {labels.dtype}")
    labels = labels.long()  # gather/scatter/one_hot/cross_entropy need int64 indices
    if num_classes is not None and labels.numel():
        # On an accelerator, min/max would be two host syncs per step: skipped where the caller
        # checked these labels on the host already (the trainer, before copying them).
        if labels.device.type == "cpu" or _HOST_CHECKED.get() != num_classes:
            check_label_range(int(labels.min()), int(labels.max()), num_classes, owner)
    return labels


def check_label_range(low: int, high: int, num_classes: int, owner: str = "loss") -> None:
    """Raise the error for labels outside 0..C−1, given their ``low``/``high`` (min, max).

    >>> check_label_range(0, 3, 3, "proxy_anchor")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: proxy_anchor: labels must be contiguous class ids in 0..2 (num_classes=3); ...
    """
    if low < 0 or high >= num_classes:
        raise ValueError(
            f"{owner}: labels must be contiguous class ids in 0..{num_classes - 1} "
            f"(num_classes={num_classes}); got min {low}, max {high}. Remap labels per split "
            "or pass the right num_classes to build_loss."
        )


@contextlib.contextmanager
def labels_checked_on_host(num_classes: int | None) -> Iterator[None]:
    """Inside, :func:`check_batch` trusts accelerator labels to be in 0..``num_classes``−1
    (no device→host sync): for a caller that ran :func:`check_label_range` on the host copy of
    every label it passes (this thread only; CPU labels are always checked)."""
    token = _HOST_CHECKED.set(num_classes)
    try:
        yield
    finally:
        _HOST_CHECKED.reset(token)


def zero_loss(*tensors: torch.Tensor) -> torch.Tensor:
    """A finite zero connected to ``tensors`` (so backward gives zero gradients, never NaN)."""
    return sum(
        (t.sum() * 0.0 for t in tensors),
        torch.zeros((), dtype=tensors[0].dtype, device=tensors[0].device),
    )


class DMLLoss(nn.Module):
    """Base class of every loss in the study.

    Subclasses implement :meth:`compute`; :meth:`forward` is final: it checks the batch
    (:func:`check_batch` against :meth:`expected_inputs`), casts the embeddings to
    :func:`compute_dtype` and returns a finite zero connected to the embeddings and the loss's
    parameters for an empty batch.

    Attributes:
        metric: the retrieval metric the embeddings are trained for; evaluation follows it
            (``"cosine"`` for most losses, ``"euclidean"`` on unnormalized embeddings for RSW).
        normalize_embeddings: whether the model should L2-normalize its output for this loss.
    """

    metric: ClassVar[Metric] = "cosine"
    normalize_embeddings: ClassVar[bool] = True
    registry_name: ClassVar[str] = ""
    #: hyper-parameter -> the values it can sensibly take (checked by ``build_loss`` and by
    #: check_params, which names the params.yaml key); a hyper-parameter not listed is unchecked.
    hyperparameter_ranges: ClassVar[dict[str, Range]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "forward" in cls.__dict__:
            raise TypeError(
                f"{cls.__qualname__} overrides forward(); implement compute(embeddings, labels) "
                "instead (DMLLoss.forward checks and casts the inputs once, then calls it)"
            )

    @final
    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        num_classes, embedding_dim = self.expected_inputs()
        labels = check_batch(
            embeddings,
            labels,
            num_classes=num_classes,
            embedding_dim=embedding_dim,
            owner=self.registry_name or type(self).__name__,
        )
        embeddings = embeddings.to(compute_dtype(embeddings))  # bf16/fp16 (autocast) → float32
        if labels.numel() == 0:
            return zero_loss(embeddings, *self.parameters())
        return self.compute(embeddings, labels)

    def compute(
        self, embeddings: torch.Tensor, labels: torch.Tensor
    ) -> torch.Tensor:  # pragma: no cover
        """The loss of a checked, non-empty batch: embeddings B×d in :func:`compute_dtype`,
        labels int64."""
        raise NotImplementedError

    def expected_inputs(self) -> tuple[int | None, int | None]:
        """``(num_classes, embedding_dim)`` that :func:`check_batch` enforces; None = any."""
        return None, None

    def param_groups(self, base_lr: float) -> list[dict[str, Any]]:
        """Optimizer parameter groups for the loss's own learnable parameters.

        The default (no learnable parameters) is an empty list; losses with proxies override it
        and apply their learning-rate multiplier, so the optimizer can never forget them.
        """
        params = [p for p in self.parameters() if p.requires_grad]
        if params:
            raise NotImplementedError(
                f"{type(self).__name__} has learnable parameters but does not define param_groups()"
            )
        return []

    def schedule(self, epoch: int, num_epochs: int, lr_drops: int | None = None) -> None:
        """Called by the trainer at the start of every epoch (0-based).

        Losses whose behaviour changes over training (e.g. RSW's second phase) switch here,
        explicitly, from the trainer's epoch counter; the default does nothing. Under the
        plateau rule (``TrainSettings.schedule == "plateau"``) ``num_epochs`` is only a cap and
        ``lr_drops`` counts the lr drops taken so far: a phase keyed to "the last epochs" of a
        fixed budget starts at the first drop instead.
        """
