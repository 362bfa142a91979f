"""Key-by-key checks of the free-form parts of ``params.yaml`` (loss hyper-parameters and
``TrainSettings`` overrides), so an error names the exact key and the valid choices. Values are
strict: pydantic's lax mode would turn ``"0.001"`` into 0.001 and ``1`` into ``True``, so a value
whose YAML type differs from the validated one is rejected.

>>> check_train_overrides({"epochs": 3}, "train")
>>> check_train_overrides({"epoch": 3}, "train")  # doctest: +NORMALIZE_WHITESPACE
Traceback (most recent call last):
...
dmlstudy.config.errors.ParamsError: train.epoch: unknown key (did you mean 'epochs'?).
Valid keys: ...
>>> check_train_overrides({"lr": "0.001"}, "train")
Traceback (most recent call last):
...
dmlstudy.config.errors.ParamsError: train.lr: '0.001' is quoted: write 0.001 without quotes (a number, not a string)
"""  # noqa: E501

from __future__ import annotations

import json
import typing
from typing import Annotated, Any

from pydantic import TypeAdapter, ValidationError

from dmlstudy.config.errors import ParamsError, quoted_scalar_hint
from dmlstudy.config.suggest import did_you_mean

# dmlstudy.losses and dmlstudy.training are imported inside the functions: the losses registry
# imports dmlstudy.config.suggest, so a module-level import here would be circular.

#: TrainSettings fields the pipeline sets itself (paths, loss, seed; test evaluation is off only
#: while tuning); params.yaml may not set them.
RESERVED_TRAIN_KEYS = (
    "prepared_dir",
    "out_dir",
    "loss",
    "loss_params",
    "seed",
    "label_level",
    "evaluate_test",
)


def unknown_key(key: str, valid: list[str], where: str) -> ParamsError:
    """The error for ``where.key`` not being one of ``valid``."""
    return ParamsError(
        f"{where}.{key}: unknown key{did_you_mean(key, valid)}. "
        f"Valid keys: {', '.join(valid) or '(none)'}"
    )


def _coerced(value: Any, result: Any) -> str | None:
    """What lax validation converted across YAML scalar kinds (str/bool/number), else None."""
    if isinstance(value, str) and isinstance(result, int | float):
        return quoted_scalar_hint(value) or f"{value!r} is a string"
    if isinstance(value, bool) != isinstance(result, bool) and isinstance(value, int | float):
        kind = "a boolean" if isinstance(value, bool) else "a number"
        wanted = "true or false" if isinstance(result, bool) else "a number"
        return f"{json.dumps(value)} is {kind}: write {wanted}"
    if isinstance(value, list | tuple) and isinstance(result, list | tuple):
        return next((m for v, r in zip(value, result) if (m := _coerced(v, r))), None)
    if isinstance(value, dict) and isinstance(result, dict):
        return next((m for k, v in value.items() if (m := _coerced(v, result.get(k)))), None)
    return None


def check_value(adapter: TypeAdapter, value: Any, key: str) -> None:
    """Validate ``value`` for ``key``; no conversion between strings, booleans and numbers."""
    try:
        result = adapter.validate_python(value)
    except ValidationError as exc:
        msg = "; ".join(e["msg"] for e in exc.errors())
        hint = quoted_scalar_hint(value)
        raise ParamsError(f"{key}: {msg} (got {value!r}{'; ' + hint if hint else ''})") from None
    problem = _coerced(value, result)
    if problem:
        raise ParamsError(f"{key}: {problem}")


def check_train_overrides(values: dict[str, Any], where: str) -> None:
    """Check that ``values`` are valid ``TrainSettings`` fields with valid values."""
    from dmlstudy.training.settings import TrainSettings

    fields = {k: f for k, f in TrainSettings.model_fields.items() if k not in RESERVED_TRAIN_KEYS}
    for key, value in values.items():
        if key not in fields:
            raise unknown_key(str(key), list(fields), where)
        field = fields[key]
        annotation = (
            Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
        )
        check_value(TypeAdapter(annotation), value, f"{where}.{key}")


def _loss_type_hints(name: str) -> dict[str, Any]:
    from dmlstudy.losses import get_loss_class

    cls = get_loss_class(name)
    try:
        return typing.get_type_hints(cls.__init__)
    except Exception:  # unresolvable forward references: fall back to the defaults' types
        return {}


def check_loss_params(
    name: str, values: dict[str, Any] | None, where: str, section_keys: tuple[str, ...] = ()
) -> None:
    """Check that ``values`` are keywords of loss ``name``'s constructor, with values of the
    annotated type (or the default's type where the constructor is not annotated) inside the
    loss's ``hyperparameter_ranges``; ``section_keys`` are the other keys valid beside them (a
    ``losses.<loss>`` section's ``train`` and ``per_dataset``), named with the valid choices.

    A regularizer's nested ``base_params`` (direction, language) are checked against the
    keywords of the ``base`` named next to them; without a ``base`` beside them (an override of
    a published section) the merged run settings are checked when the run's loss is built."""
    from dmlstudy.losses import list_losses, loss_hyperparameters
    from dmlstudy.losses.base import check_ranges

    defaults = loss_hyperparameters(name)
    hints = _loss_type_hints(name)
    values = values or {}
    for key, value in values.items():
        if key not in defaults:
            raise unknown_key(str(key), [*defaults, *section_keys], where)
        if value is None:  # None means "use the default" (build_loss)
            continue
        if key in hints:
            annotation = hints[key]
        elif defaults[key] is not None and not isinstance(defaults[key], type):
            annotation = type(defaults[key])
            if annotation is float:
                annotation = float | int
            elif annotation is tuple:
                annotation = tuple | list
        else:
            continue
        check_value(TypeAdapter(annotation), value, f"{where}.{key}")
    for key, problem in check_ranges(name, values).items():
        raise ParamsError(f"{where}.{key}: {problem}")
    base = values.get("base")
    if "base_params" in defaults and base is not None:
        if base not in list_losses():
            raise ParamsError(
                f"{where}.base: unknown loss {base!r}{did_you_mean(base, list_losses())}. "
                f"Valid choices: {', '.join(list_losses())}"
            )
        if values.get("base_params") is not None:
            check_loss_params(base, values["base_params"], f"{where}.base_params")


def check_both_phases(name: str, values: dict[str, Any] | None, where: str) -> None:
    """An ablation arm of a loss with a second phase (keywords ``<x>`` and ``phase2_<x>``, e.g.
    RSW's warp ``k1`` / ``phase2_k1``) changes what it names in both phases: naming one of a pair
    without the other at the same value would leave the other phase as it was (an RSW "no warp"
    arm warped from the lr drop on).

    >>> check_both_phases("rsw", {"k1": 1.0, "phase2_k1": 1.0, "margin": 0.0}, "arm")
    >>> check_both_phases("rsw", {"k2": 1.0}, "arm")
    Traceback (most recent call last):
    ...
    dmlstudy.config.errors.ParamsError: arm.k2 = 1.0 changes phase 1 only: set phase2_k2: 1.0 too (an ablation arm changes what it names in both phases)
    """  # noqa: E501
    from dmlstudy.losses import loss_hyperparameters

    keys = loss_hyperparameters(name)
    for key, value in (values or {}).items():
        two = key.startswith("phase2_")
        pair = key.removeprefix("phase2_") if two else f"phase2_{key}"
        if pair in keys and (pair not in values or values[pair] != value):
            raise ParamsError(
                f"{where}.{key} = {value!r} changes phase {2 if two else 1} only: set "
                f"{pair}: {value!r} too (an ablation arm changes what it names in both phases)"
            )
