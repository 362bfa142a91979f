"""``tuning:``: the validation-only tuning campaign (``python -m dmlstudy.pipeline.campaign``) —
the same number of trials for every loss over the search space declared here."""

from __future__ import annotations

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


class TuningSection(StrictSection):
    """Search trials per loss (trial 0 = the published values), their shorter budget, and the
    confirmation of the best trials at the full budget on several seeds."""

    dataset: str = "omniglot"
    trials: int = Field(8, gt=0, description="search trials per loss (trial 0: published values)")
    seed: int = Field(0, description="seed of the search runs and of the sampled points")
    budget: dict[str, Any] = Field(
        default_factory=dict, description="TrainSettings of the search trials (a shorter budget)"
    )
    loss_params: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="loss -> hyper-parameters of its search trials only (what the short budget "
        "needs, e.g. rsw phase2_epochs: 0); confirmation runs use the protocol's",
    )
    confirm_top: int = Field(2, gt=0, description="best search trials confirmed at full budget")
    confirm_seeds: list[int] = Field(default_factory=lambda: [0, 1])
    space: dict[str, dict[str, dict[str, list[Any]]]] = Field(
        default_factory=dict,
        description="'common' or a loss -> 'train.<field>' or a loss hyper-parameter -> "
        "{uniform|log|int|choice: [...]}",
    )

    @model_validator(mode="after")
    def _check(self) -> TuningSection:
        from dmlstudy.losses import list_losses

        check_choice(self.dataset, DATASETS, "dataset (tuning.dataset)")
        if self.confirm_top > self.trials:
            raise ValueError(f"tuning.confirm_top ({self.confirm_top}) > trials ({self.trials})")
        unique_nonempty(self.confirm_seeds, "tuning.confirm_seeds")
        check_train_overrides(self.budget, "tuning.budget")
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
