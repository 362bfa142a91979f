"""Key-by-key checks of the free-form parts of ``params.yaml`` (loss hyper-parameters and
``TrainSettings`` overrides), so an error names the exact key and the valid choices.

>>> check_train_overrides({"epochs": 3}, "train")
>>> check_train_overrides({"epoch": 3}, "train")  # doctest: +NORMALIZE_WHITESPACE
Traceback (most recent call last):
...
dmlstudy.pipeline.validate.ParamsError: train.epoch: unknown key (did you mean 'epochs'?).
Valid keys: ...
>>> check_train_overrides({"epochs": "three"}, "train")  # doctest: +NORMALIZE_WHITESPACE
Traceback (most recent call last):
...
dmlstudy.pipeline.validate.ParamsError: train.epochs: Input should be a valid integer,
unable to parse string as an integer (got 'three')
"""

from __future__ import annotations

import difflib
import typing
from typing import Annotated, Any

from pydantic import TypeAdapter, ValidationError

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


class ParamsError(ValueError):
    """A bad value in params.yaml; the message names the key and the valid choices."""


def _unknown(key: str, valid: list[str], where: str) -> ParamsError:
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ParamsError(
        f"{where}.{key}: unknown key{hint}. Valid keys: {', '.join(valid) or '(none)'}"
    )


def _check_value(adapter: TypeAdapter, value: Any, key: str) -> None:
    try:
        adapter.validate_python(value, strict=False)
    except ValidationError as exc:
        msg = "; ".join(e["msg"] for e in exc.errors())
        raise ParamsError(f"{key}: {msg} (got {value!r})") from None


def check_train_overrides(values: dict[str, Any], where: str) -> None:
    """Check that ``values`` are valid ``TrainSettings`` fields with valid values."""
    from dmlstudy.training.settings import TrainSettings

    fields = {k: f for k, f in TrainSettings.model_fields.items() if k not in RESERVED_TRAIN_KEYS}
    for key, value in values.items():
        if key not in fields:
            raise _unknown(str(key), list(fields), where)
        field = fields[key]
        annotation = (
            Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
        )
        _check_value(TypeAdapter(annotation), value, f"{where}.{key}")


def _loss_type_hints(name: str) -> dict[str, Any]:
    from dmlstudy.losses import get_loss_class

    cls = get_loss_class(name)
    try:
        return typing.get_type_hints(cls.__init__)
    except Exception:  # unresolvable forward references: fall back to the defaults' types
        return {}


def check_loss_params(name: str, values: dict[str, Any] | None, where: str) -> None:
    """Check that ``values`` are keywords of loss ``name``'s constructor, with values of the
    annotated type (or the default's type where the constructor is not annotated)."""
    from dmlstudy.losses import loss_hyperparameters

    defaults = loss_hyperparameters(name)
    hints = _loss_type_hints(name)
    for key, value in (values or {}).items():
        if key not in defaults:
            raise _unknown(str(key), list(defaults), where)
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
        _check_value(TypeAdapter(annotation), value, f"{where}.{key}")
