"""Loss interface and registry (timm-style): ``@register_loss``, ``build_loss``, ``list_losses``.

Every loss is an ``nn.Module`` with ``forward(embeddings, labels) -> scalar tensor``.
Runtime values (``num_classes``, ``embedding_dim``, ``class_names``) may always be passed to
:func:`build_loss`; a loss whose constructor does not take one ignores it, a loss that needs
one that is missing raises.  Hyper-parameters are explicit keyword arguments of the
constructor; an unknown or misspelt keyword raises with the valid choices (unlike OML, which
silently drops unknown kwargs).  ``None`` means "use the default".
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, ClassVar, Literal, TypeVar

import torch
from torch import nn

from dmlstudy.config.suggest import did_you_mean

Metric = Literal["cosine", "euclidean"]
RUNTIME_KEYS = ("num_classes", "embedding_dim", "class_names")

_REGISTRY: dict[str, type[DMLLoss]] = {}

T = TypeVar("T", bound=type["DMLLoss"])


class DMLLoss(nn.Module):
    """Base class of every loss in the study.

    Attributes:
        metric: the retrieval metric the embeddings are trained for; evaluation follows it
            (``"cosine"`` for most losses, ``"euclidean"`` on unnormalized embeddings for RSW).
        normalize_embeddings: whether the model should L2-normalize its output for this loss.
    """

    metric: ClassVar[Metric] = "cosine"
    normalize_embeddings: ClassVar[bool] = True
    registry_name: ClassVar[str] = ""

    def forward(
        self, embeddings: torch.Tensor, labels: torch.Tensor
    ) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

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

    def schedule(self, epoch: int, num_epochs: int) -> None:
        """Called by the trainer at the start of every epoch (0-based).

        Losses whose behaviour changes over training (e.g. RSW's second phase) switch here,
        explicitly, from the trainer's epoch counter; the default does nothing.
        """


def register_loss(name: str) -> Callable[[T], T]:
    """Class decorator adding a loss to the registry under ``name``."""

    def decorator(cls: T) -> T:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(
                f"loss {name!r} is already registered by {_REGISTRY[name].__qualname__}"
            )
        cls.registry_name = name
        _REGISTRY[name] = cls
        return cls

    return decorator


def list_losses() -> list[str]:
    """Names of all registered losses, sorted."""
    return sorted(_REGISTRY)


def get_loss_class(name: str) -> type[DMLLoss]:
    """The registered class for ``name``; an unknown name raises with the valid choices."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"Unknown loss {name!r}{did_you_mean(name, _REGISTRY)}. "
            f"Valid choices: {', '.join(list_losses())}"
        ) from None


def loss_hyperparameters(name: str) -> dict[str, Any]:
    """The constructor's hyper-parameters of loss ``name`` with their defaults (runtime keys
    excluded).

    Every hyper-parameter must have a default (``None`` in params.yaml means "the default"); one
    without raises ``TypeError`` instead of returning ``inspect.Parameter.empty``.
    """
    sig = inspect.signature(get_loss_class(name).__init__)
    params = {
        p.name: p.default
        for p in list(sig.parameters.values())[1:]
        if p.name not in RUNTIME_KEYS and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    }
    missing = [key for key, value in params.items() if value is inspect.Parameter.empty]
    if missing:
        raise TypeError(
            f"Loss {name!r} has hyper-parameter(s) without a default: {', '.join(missing)}. "
            f"Give them a default in {get_loss_class(name).__qualname__}.__init__ (runtime values "
            f"must be one of {', '.join(RUNTIME_KEYS)})"
        )
    return params


def build_loss(
    name: str,
    *,
    num_classes: int | None = None,
    embedding_dim: int | None = None,
    class_names: list[str] | None = None,
    **params: Any,
) -> DMLLoss:
    """Build the registered loss ``name``.

    ``params`` are the loss's hyper-parameters; a value of ``None`` means "use the default".
    Unknown keywords raise with the valid choices.  Runtime values are forwarded only to losses
    whose constructor takes them; one that is required but missing raises.
    """
    cls = get_loss_class(name)
    sig = inspect.signature(cls.__init__)
    accepted = {p.name: p for p in list(sig.parameters.values())[1:]}
    valid = [k for k in accepted if k not in RUNTIME_KEYS]
    unknown = sorted(set(params) - set(valid))
    if unknown:
        hints = [f"{key!r}{did_you_mean(key, valid)}" for key in unknown]
        raise TypeError(
            f"Unknown hyper-parameter(s) for loss {name!r}: {', '.join(hints)}. "
            f"Valid choices: {', '.join(valid) or '(none)'}"
        )
    kwargs = {k: v for k, v in params.items() if v is not None}
    runtime = {
        "num_classes": num_classes,
        "embedding_dim": embedding_dim,
        "class_names": class_names,
    }
    for key, value in runtime.items():
        if key not in accepted:
            continue
        if value is None:
            if accepted[key].default is inspect.Parameter.empty:
                raise ValueError(
                    f"Loss {name!r} needs {key}= (a runtime value); pass it to build_loss"
                )
            continue
        kwargs[key] = value
    return cls(**kwargs)
