"""The sections of ``params.yaml`` as strict pydantic models (every key known, no type coercion:
``seeds: ["0"]`` or ``image_size: "28"`` is an error, not a silent conversion).

>>> try:  # doctest: +NORMALIZE_WHITESPACE
...     StudySection(datasets=["omniglott"], losses=["triplet"], seeds=[0])
... except ValueError as err:
...     print(err.errors()[0]["msg"])
Value error, unknown dataset 'omniglott' (did you mean 'omniglot'?).
Valid choices: omniglot, cub200, cars196, sop, inshop
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dmlstudy.config.suggest import check_choice, did_you_mean
from dmlstudy.data import DATA_DIR_ENV
from dmlstudy.data import DATASETS as DATASET_SPECS

#: Dataset names, in the data layer's order (dmlstudy.data.DATASETS holds their specs).
DATASETS = tuple(DATASET_SPECS)
ABLATIONS = (
    "daal_parts",
    "rsw_warp",
    "direction_gamma",
    "language_omega",
    "embedding_size",
    "m_per_class",
)
#: Datasets with coarse labels (the multi-modal experiment trains on them); CUB-200 has none.
COARSE_DATASETS = ("omniglot", "cars196", "sop", "inshop")


def check_mapping(value: Any, key: str, what: str) -> None:
    """``value`` must be a mapping (``what`` says of what) or absent."""
    if value is not None and not isinstance(value, dict):
        raise ValueError(f"{key} must be a mapping ({what}), got {value!r}")


def unique_nonempty(values: list[Any], key: str) -> list[Any]:
    if not values:
        raise ValueError(f"{key} must not be empty")
    dup = sorted({str(v) for v in values if values.count(v) > 1})
    if dup:
        raise ValueError(f"{key} has duplicates: {', '.join(dup)}")
    return values


def registered_losses(names: list[str], key: str) -> list[str]:
    """``names`` (the list at ``key``): unique, not empty, each a registered loss."""
    from dmlstudy.losses import list_losses  # not at module level: see config/checks.py

    unique_nonempty(names, key)
    return [check_choice(name, list_losses(), "loss") for name in names]


class StrictSection(BaseModel):
    """Base of every section: known keys only (with "did you mean"), strict types, frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            valid = list(cls.model_fields)
            for key in data:
                if key not in valid:
                    raise ValueError(
                        f"unknown key {key!r}{did_you_mean(key, valid)}. "
                        f"Valid keys: {', '.join(valid)}"
                    )
        return data


class StudySection(StrictSection):
    """What the study runs: ``study.datasets × study.losses × study.seeds`` trainings, plus the
    optional ablation studies and multi-modal experiment (lists; ``[]`` switches them off)."""

    datasets: list[str] = Field(description="datasets to run, subset of DATASETS")
    losses: list[str] = Field(description="registry names of the losses to train")
    seeds: list[int] = Field(
        description="one training per seed; >= 2 seeds give confidence intervals"
    )
    profile: str = Field(
        "full",
        description="a profile of params.yaml's `profiles:` (full, paper, wide64, tiny: tests "
        "and CI); "
        "checked against them by StudyConfig",
    )
    ablations: list[str] = Field(default_factory=list, description=f"subset of {ABLATIONS}")
    multimodal: list[str] = Field(
        default_factory=list, description="datasets for the coarse-label experiment"
    )
    untuned: list[str] = Field(
        default_factory=list,
        description="losses of study.losses that train at their published values until the "
        "tuning campaign has run for them (check_params refuses a loss without tuned values "
        "while the others have them, unless it is listed here)",
    )

    @field_validator("datasets", "multimodal")
    @classmethod
    def _datasets(cls, v: list[str], info: Any) -> list[str]:
        if info.field_name == "datasets":
            unique_nonempty(v, "study.datasets")
        return [check_choice(d, DATASETS, "dataset") for d in v]

    @field_validator("losses")
    @classmethod
    def _losses(cls, v: list[str]) -> list[str]:
        return registered_losses(v, "study.losses")

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int]) -> list[int]:
        return unique_nonempty(v, "study.seeds")

    @field_validator("ablations")
    @classmethod
    def _ablations(cls, v: list[str]) -> list[str]:
        return [check_choice(a, ABLATIONS, "ablation") for a in v]


class DataSection(StrictSection):
    dir: str = Field(
        description="data directory (archives under <dir>/<dataset>/); "
        f"${DATA_DIR_ENV} overrides it"
    )
    work_dir: str | None = Field(
        None, description="downloads/extractions; None = $DMLSTUDY_WORK_DIR or ~/.cache"
    )


class PrepareSection(StrictSection):
    image_size: int = Field(gt=0, description="images are cached at this size (pixels)")
    val_fraction: float = Field(
        gt=0, lt=1, description="fraction of train classes held out for validation"
    )
    val_by: Literal["class", "coarse"] = Field(
        "class",
        description="hold out whole classes, or whole coarse classes (Omniglot alphabets, as the "
        "test split does; the multi-modal experiment then selects on unseen coarse classes)",
    )
    split_seed: int = 0
    max_classes_per_split: int | None = Field(None, gt=1, description="cap (tiny profile)")


class DatasetPreset(StrictSection):
    """Per-dataset protocol: how to prepare it and the training settings (TrainSettings fields)."""

    prepare: PrepareSection
    train: dict[str, Any] = Field(default_factory=dict)


#: Keys of a ``losses.<loss>`` section that are not constructor keywords: ``train`` (TrainSettings
#: the loss is defined with on every dataset, e.g. RSW's LayerNorm head) and ``per_dataset``
#: (``<dataset>: {<hyper-parameter>: value, train: {...}}``: departures chosen on that dataset's
#: validation split). Keeping them inside the loss's section means a train stage depends on
#: ``losses.<its loss>`` only: editing one loss never reruns the others.
LOSS_SECTION_KEYS = ("train", "per_dataset")


def split_loss_section(
    section: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any], dict[str, dict[str, Any]]]:
    """``losses.<loss>`` → (constructor keywords, ``train`` overrides, ``per_dataset`` overrides).

    >>> split_loss_section({"margin": 0.1, "train": {"pooling": "max"},
    ...                     "per_dataset": {"omniglot": {"margin": 0.2}}})
    ({'margin': 0.1}, {'pooling': 'max'}, {'omniglot': {'margin': 0.2}})
    """
    params = {k: v for k, v in section.items() if k not in LOSS_SECTION_KEYS}
    return params, dict(section.get("train") or {}), dict(section.get("per_dataset") or {})


class ProfileSection(StrictSection):
    """What ``study.profile: <name>`` changes (``prepare``, ``train``, ``loss_overrides``), and
    what the studies of ``studies/paper/dvc.yaml`` train under this profile: ``losses`` and
    ``ablations`` (None: ``study.losses`` / ``study.ablations``, the default pipeline's) on
    ``seeds`` (every loss) and ``ablation_seeds`` (every arm). The default pipeline trains
    ``study.losses`` on ``study.seeds``; the paper-grade study is wider than the quick default
    (``profiles.paper.losses``: every loss, ``study.losses``: a few of them)."""

    prepare: dict[str, Any] = Field(default_factory=dict)
    train: dict[str, Any] = Field(default_factory=dict)
    loss_overrides: dict[str, dict[str, Any]] = Field(default_factory=dict)
    losses: list[str] | None = Field(
        None, description="studies/paper: the losses it trains (None: study.losses)"
    )
    ablations: list[str] | None = Field(
        None, description="studies/paper: the ablations it trains (None: study.ablations)"
    )
    seeds: list[int] = Field(default_factory=list, description="studies/paper: main runs' seeds")
    ablation_seeds: list[int] = Field(
        default_factory=list, description="studies/paper: seeds of every ablation arm"
    )

    @field_validator("losses")
    @classmethod
    def _losses(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else registered_losses(v, "profiles.<name>.losses")

    @field_validator("ablations")
    @classmethod
    def _ablations(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else [check_choice(a, ABLATIONS, "ablation") for a in v]


class AblationSection(StrictSection):
    """One ablation: trainings of ``loss`` on ``dataset``, one per variant (or per sweep value)."""

    dataset: str = "omniglot"
    loss: str
    variants: dict[str, dict[str, dict[str, Any]]] = Field(
        default_factory=dict, description="label -> {loss_params: {...}, train: {...}}"
    )
    sweep: dict[str, list[Any]] = Field(
        default_factory=dict, description="'loss_params.<key>' or 'train.<key>' -> values"
    )
    train: dict[str, Any] = Field(
        default_factory=dict, description="budget overrides for all variants"
    )
    loss_params: dict[str, Any] = Field(
        default_factory=dict,
        description="hyper-parameters shared by all variants (before each variant's own)",
    )
    reference: str | None = Field(
        None, description="the arm every other arm is compared with (default: the first)"
    )
    train_from: str | None = Field(
        None,
        description="the loss whose training settings (losses.<loss>.train and its tuned "
        "per_dataset train values) every arm uses instead of its own loss's: the loss the "
        "reference arm reduces to, so that the reference is its tuned main run",
    )

    def arm_labels(self) -> list[str]:
        """Labels of the arms in order: named variants, then ``<param>=<value>`` per sweep value.

        >>> AblationSection(loss="x", variants={"a": {}}, sweep={"train.lr": [1, 2]}).arm_labels()
        ['a', 'lr=1', 'lr=2']
        """
        swept = [f"{k.partition('.')[2]}={v}" for k, values in self.sweep.items() for v in values]
        return [*self.variants, *swept]

    @model_validator(mode="after")
    def _reference_is_an_arm(self) -> AblationSection:
        if self.reference is not None:
            check_choice(self.reference, self.arm_labels(), "reference arm")
        return self


class MultimodalSection(StrictSection):
    train: dict[str, Any] = Field(
        default_factory=dict, description="budget overrides (coarse-label runs)"
    )
    loss_params: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="loss -> hyper-parameters the short budget needs (e.g. rsw phase2_epochs)",
    )
