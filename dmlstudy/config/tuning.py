"""``tuning:``: the validation-only tuning campaign (``python -m dmlstudy.study.campaign``) —
the same budget in training epochs for every loss, searched by Optuna (seeded TPE, Hyperband
over the validation rounds) over the space declared here, the best trials confirmed on seeds."""

from __future__ import annotations

import math
from typing import Any

from pydantic import Field, model_validator

from dmlstudy.config.checks import check_loss_params, check_train_overrides
from dmlstudy.config.sections import DATASETS, StrictSection, unique_nonempty
from dmlstudy.config.suggest import check_choice

#: Distributions of one search dimension: ``{uniform: [lo, hi]}``, ``{log: [lo, hi]}``,
#: ``{int: [lo, hi]}`` or ``{choice: [a, b, ...]}``.
SPACE_KINDS = ("uniform", "log", "int", "choice")


def check_dimension(key: str, spec: Any, where: str) -> list[Any]:
    """Validate one search dimension; return the values it can take at its ends / choices.

    >>> check_dimension("margin", {"uniform": [0.1, 0.5]}, "tuning.space.triplet")
    [0.1, 0.5]
    """
    if not isinstance(spec, dict) or len(spec) != 1:
        raise ValueError(f"{where}.{key} must be one of {{{', '.join(SPACE_KINDS)}: [...]}}")
    ((kind, args),) = spec.items()
    check_choice(kind, SPACE_KINDS, f"distribution ({where}.{key})")
    if not isinstance(args, list) or not args:
        raise ValueError(f"{where}.{key}.{kind} must be a non-empty list")
    if kind != "choice":
        numbers = all(isinstance(a, int | float) and not isinstance(a, bool) for a in args)
        if len(args) != 2 or not numbers or args[0] >= args[1]:
            raise ValueError(f"{where}.{key}.{kind} must be [low, high] with low < high")
        if kind == "log" and args[0] <= 0:
            raise ValueError(f"{where}.{key}.log needs low > 0")
        if kind == "int" and not all(isinstance(a, int) for a in args):
            raise ValueError(f"{where}.{key}.int needs integer bounds")
    return list(args)


class TpeSampler(StrictSection):
    """Optuna's TPE sampler: ``n_startup_trials`` random points (after trial 0), then TPE."""

    seed: int = Field(0, description="sampler seed (each trial's draw: seed, loss, trial number)")
    n_startup_trials: int = Field(5, ge=1, description="random trials before TPE takes over")


class SamplerSection(StrictSection):
    tpe: TpeSampler = Field(default_factory=TpeSampler)


class HyperbandPruner(StrictSection):
    """Optuna's Hyperband over the validation rounds (resource: epochs): brackets whose first
    rung is at ``min_resource * reduction_factor**i`` epochs; the maximum is the dataset's
    epoch cap."""

    min_resource: int = Field(3, ge=1, description="epochs before the first pruning rung")
    reduction_factor: int = Field(3, ge=2, description="1/reduction_factor promoted per rung")


class PrunerSection(StrictSection):
    hyperband: HyperbandPruner = Field(default_factory=HyperbandPruner)


class TuningSection(StrictSection):
    """An equal search budget in training epochs per loss (trial 0 = the published values;
    every trial the real protocol on validation classes, prunable after each validation round),
    then the best ``confirm_top`` trials at the full protocol on ``confirm_seeds``."""

    dataset: str = "omniglot"
    seed: int = Field(0, description="training seed of the search trials")
    epochs_per_loss: int = Field(
        200,
        gt=0,
        description="search budget per loss in training epochs, summed over all its trials "
        "(pruned and stopped ones included); the same for every loss",
    )
    sampler: SamplerSection = Field(default_factory=SamplerSection)
    pruner: PrunerSection = Field(default_factory=PrunerSection)
    loss_params: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="loss -> hyper-parameters of its search trials only; confirmation runs use "
        "the protocol's",
    )
    confirm_top: int = Field(3, gt=0, description="best complete search trials confirmed")
    confirm_seeds: list[int] = Field(default_factory=lambda: [0, 1, 2])
    storage: str = Field(
        "results/tuning/{dataset}/optuna.db",
        description="the committed SQLite record of the campaign ({dataset} is replaced)",
    )
    boundary_margin: float = Field(
        0.05,
        gt=0,
        lt=0.5,
        description="a winner within this fraction of a numeric dimension's range (log range "
        "for log dimensions) of a bound is a boundary hit",
    )
    space: dict[str, dict[str, dict[str, list[Any]]]] = Field(
        default_factory=dict,
        description="'common' or a loss -> 'train.<field>' or a loss hyper-parameter -> "
        "{uniform|log|int|choice: [...]}",
    )

    def storage_path(self) -> str:
        """The storage file of ``dataset`` (``storage`` with ``{dataset}`` replaced)."""
        return self.storage.replace("{dataset}", self.dataset)

    def loss_space(self, loss: str) -> dict[str, dict[str, list[Any]]]:
        """What the campaign searches for ``loss``: ``space.common`` updated by ``space.<loss>``.

        >>> TuningSection(space={"common": {"train.lr": {"log": [1e-4, 1e-2]}},
        ...                      "triplet": {"margin": {"uniform": [0.02, 0.4]}}}
        ...               ).loss_space("triplet")  # doctest: +NORMALIZE_WHITESPACE
        {'train.lr': {'log': [0.0001, 0.01]}, 'margin': {'uniform': [0.02, 0.4]}}
        """
        return {**self.space.get("common", {}), **self.space.get(loss, {})}

    @model_validator(mode="after")
    def _check(self) -> TuningSection:
        from dmlstudy.losses import list_losses

        check_choice(self.dataset, DATASETS, "dataset (tuning.dataset)")
        unique_nonempty(self.confirm_seeds, "tuning.confirm_seeds")
        if not self.storage.endswith(".db"):
            raise ValueError(f"tuning.storage ({self.storage!r}) must be a SQLite file (*.db)")
        for loss, values in self.loss_params.items():
            check_choice(loss, list_losses(), "loss (tuning.loss_params.<loss>)")
            check_loss_params(loss, values, f"tuning.loss_params.{loss}")
        for owner, dims in self.space.items():
            where = f"tuning.space.{owner}"
            if owner != "common":
                check_choice(owner, list_losses(), "loss (tuning.space.<loss> or common)")
            for key, spec in dims.items():
                for value in check_dimension(key, spec, where):
                    if key.startswith("train."):
                        check_train_overrides({key.removeprefix("train."): value}, where)
                    elif owner == "common":
                        raise ValueError(f"{where}.{key}: common dimensions are 'train.<field>'")
                    else:
                        check_loss_params(owner, {key: value}, where)
        return self


#: val MAP@R below this (as a fraction) marks a collapsed trial in the campaign's record (chance
#: level on Omniglot is about 1%).
COLLAPSED = 0.12

#: What a hit on a bound that is the parameter's own limit says: widening cannot go further.
AT_LIMIT = " (the parameter's own limit: nothing beyond it to search)"


def boundary_hits(
    point: dict[str, Any],
    space: dict[str, dict[str, list[Any]]],
    margin: float,
    limits: dict[str, Any] | None = None,
) -> list[str]:
    """The numeric dimensions where ``point`` lies within ``margin`` of the range (of the log
    range for ``log``) from a bound, or beyond it. ``limits`` (a loss's
    ``hyperparameter_ranges``: key → Range) marks a hit on a bound that is the parameter's own
    limit (ArcFace's margin at 0 degrees): a finding about the loss, not a space to widen.

    >>> space = {"train.lr": {"log": [0.0003, 0.003]}, "margin": {"uniform": [0.0, 1.0]}}
    >>> boundary_hits({"train.lr": 0.0029, "margin": 0.2}, space, 0.05)
    ['train.lr=0.0029 at the high bound 0.003']
    >>> from dmlstudy.losses import get_loss_class
    >>> hits = boundary_hits({"margin_degrees": 1.4}, {"margin_degrees": {"uniform": [0.0, 40.0]}},
    ...                      0.05, get_loss_class("arcface").hyperparameter_ranges)
    >>> hits == ["margin_degrees=1.4 at the low bound 0" + AT_LIMIT]
    True
    """
    out = []
    limits = limits or {}
    for key, spec in space.items():
        ((kind, args),) = spec.items()
        if kind == "choice" or key not in point:
            continue
        lo, hi, v = float(args[0]), float(args[1]), float(point[key])
        if kind == "log":
            lo, hi, v = math.log(lo), math.log(hi), math.log(v)
        frac = (v - lo) / (hi - lo)
        limit = limits.get(key)
        if frac <= margin:
            own = limit is not None and not limit.low_open and float(args[0]) <= limit.low
            out.append(f"{key}={point[key]:g} at the low bound {args[0]:g}" + AT_LIMIT * own)
        elif frac >= 1 - margin:
            own = limit is not None and float(args[1]) >= limit.high
            out.append(f"{key}={point[key]:g} at the high bound {args[1]:g}" + AT_LIMIT * own)
    return out


def loss_limits(loss: str) -> dict[str, Any]:
    """``loss``'s hyper-parameter limits (``hyperparameter_ranges``); {} for an unknown name."""
    from dmlstudy.losses import get_loss_class, list_losses

    return dict(get_loss_class(loss).hyperparameter_ranges) if loss in list_losses() else {}
