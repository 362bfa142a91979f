"""Loss registry (timm-style): ``@register_loss``, ``list_losses``, ``build_loss`` and
``build_base_loss`` (the base loss a regularizer wraps); the interface (:class:`DMLLoss`,
:mod:`dmlstudy.losses.interface`) is re-exported.  Hyper-parameters are explicit constructor
keywords; an unknown or misspelt one raises with the valid choices ("did you mean"); ``None``
means "the default".  Runtime values (``num_classes``, ``embedding_dim``, ``class_names``) go only
to constructors that take them.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from dmlstudy.config.suggest import did_you_mean
from dmlstudy.losses.interface import (  # re-exported: the interface every loss module imports
    DMLLoss,
    Metric,
    check_batch,
    compute_dtype,
    zero_loss,
)

__all__ = [
    "RUNTIME_KEYS",
    "DMLLoss",
    "Metric",
    "build_base_loss",
    "build_loss",
    "check_batch",
    "check_ranges",
    "compute_dtype",
    "get_loss_class",
    "list_losses",
    "loss_hyperparameters",
    "register_loss",
    "zero_loss",
]

RUNTIME_KEYS = ("num_classes", "embedding_dim", "class_names")

_REGISTRY: dict[str, type[DMLLoss]] = {}

T = TypeVar("T", bound=type["DMLLoss"])


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


def check_ranges(name: str, params: Mapping[str, Any]) -> dict[str, str]:
    """``{keyword: problem}`` for the values of ``params`` outside loss ``name``'s
    ``hyperparameter_ranges`` (empty when all are sensible).

    >>> check_ranges("arcface", {"scale": 1e30, "margin_degrees": 28.6})
    {'scale': '1e+30 is outside (0, 10000]: a value that cannot train (published 64)'}
    """
    cls = get_loss_class(name)
    defaults = loss_hyperparameters(name)
    return {
        key: f"{value:g} is outside {rng}: {rng.beyond} (published {defaults[key]:g})"
        for key, rng in cls.hyperparameter_ranges.items()
        if (value := params.get(key)) is not None and value not in rng
    }


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
    bad = check_ranges(name, params)
    if bad:
        raise ValueError(
            f"loss {name!r}: " + "; ".join(f"{key} {problem}" for key, problem in bad.items())
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


def build_base_loss(
    owner: str,
    base: str,
    base_params: Mapping[str, Any] | None,
    *,
    choices: Sequence[str] | None = None,
    **runtime: Any,
) -> DMLLoss:
    """The loss ``base`` that ``owner`` (a regularizer: direction, language) wraps, built by
    :func:`build_loss` from ``base_params`` (the base loss's own keywords) and the runtime values.

    ``choices`` restricts the bases (default: every registered loss but ``owner``); an unknown
    base or keyword raises with the valid choices and "did you mean", prefixed with ``owner``.

    >>> build_base_loss("direction", "triplet", {"margin": 0.3}, num_classes=4).margin
    0.3
    >>> build_base_loss("direction", "triplet", {"margn": 0.3})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: direction (base 'triplet'): Unknown ... 'margn' (did you mean 'margin'?)...
    """
    valid = list(choices) if choices is not None else [n for n in list_losses() if n != owner]
    if base not in valid:
        raise ValueError(
            f"{owner}: Unknown loss {base!r} as base{did_you_mean(base, valid)}. "
            f"Valid choices: {', '.join(valid)}"
        )
    if base_params is not None and not isinstance(base_params, Mapping):
        raise TypeError(
            f"{owner}: base_params must be a mapping of {base!r}'s hyper-parameters (or None), "
            f"got {type(base_params).__name__}"
        )
    try:
        return build_loss(base, **runtime, **dict(base_params or {}))
    except (TypeError, ValueError) as err:
        raise type(err)(f"{owner} (base {base!r}): {err}") from None
