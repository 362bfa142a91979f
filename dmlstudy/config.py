"""``params.yaml`` → typed, validated study settings (pydantic).

Every notebook of the pipeline starts with :func:`load_config`; the first stage of ``dvc repro``
(``check_params``) runs it on the whole file, so a bad value (unknown loss or dataset in a list,
wrong type, empty seed list, misspelt key) stops the pipeline before any work, with an error naming
the key and the valid choices:

>>> try:  # doctest: +NORMALIZE_WHITESPACE
...     StudySection(datasets=["omniglott"], losses=["triplet"], seeds=[0])
... except ValueError as err:
...     print(err.errors()[0]["msg"])
Value error, unknown dataset 'omniglott' (did you mean 'omniglot'?).
Valid choices: omniglot, cub200, cars196, sop, inshop
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dmlstudy.pipeline.validate import ParamsError, check_loss_params, check_train_overrides

DATASETS = ("omniglot", "cub200", "cars196", "sop", "inshop")
ABLATIONS = (
    "daal_parts",
    "rsw_warp",
    "direction_gamma",
    "language_omega",
    "embedding_size",
    "m_per_class",
)
DATA_DIR_ENV = "DMLSTUDY_DATA_DIR"
#: Datasets with coarse labels (the multi-modal experiment trains on them); CUB-200 has none.
COARSE_DATASETS = ("omniglot", "cars196", "sop", "inshop")


def _choices(value: str, valid: tuple[str, ...] | list[str], what: str) -> str:
    if value not in valid:
        close = difflib.get_close_matches(value, list(valid), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown {what} {value!r}{hint}. Valid choices: {', '.join(valid)}")
    return value


def _mapping(value: Any, key: str, what: str) -> None:
    if value is not None and not isinstance(value, dict):
        raise ValueError(f"{key} must be a mapping ({what}), got {value!r}")


def _unique_nonempty(values: list[Any], key: str) -> list[Any]:
    if not values:
        raise ValueError(f"{key} must not be empty")
    dup = sorted({str(v) for v in values if values.count(v) > 1})
    if dup:
        raise ValueError(f"{key} has duplicates: {', '.join(dup)}")
    return values


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            valid = list(cls.model_fields)
            for key in data:
                if key not in valid:
                    close = difflib.get_close_matches(str(key), valid, n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    raise ValueError(f"unknown key {key!r}{hint}. Valid keys: {', '.join(valid)}")
        return data


class StudySection(_Strict):
    """What the study runs: ``study.datasets × study.losses × study.seeds`` trainings, plus the
    optional ablation studies and multi-modal experiment (lists; ``[]`` switches them off)."""

    datasets: list[str] = Field(description="datasets to run, subset of DATASETS")
    losses: list[str] = Field(description="registry names of the losses to train")
    seeds: list[int] = Field(
        description="one training per seed; >= 2 seeds give confidence intervals"
    )
    profile: Literal["full", "tiny"] = Field(
        "full", description="'tiny': few classes/steps (tests, CI)"
    )
    ablations: list[str] = Field(default_factory=list, description=f"subset of {ABLATIONS}")
    multimodal: list[str] = Field(
        default_factory=list, description="datasets for the coarse-label experiment"
    )

    @field_validator("datasets", "multimodal")
    @classmethod
    def _datasets(cls, v: list[str], info: Any) -> list[str]:
        if info.field_name == "datasets":
            _unique_nonempty(v, "study.datasets")
        return [_choices(d, DATASETS, "dataset") for d in v]

    @field_validator("losses")
    @classmethod
    def _losses(cls, v: list[str]) -> list[str]:
        from dmlstudy.losses import list_losses

        _unique_nonempty(v, "study.losses")
        return [_choices(name, list_losses(), "loss") for name in v]

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int]) -> list[int]:
        return _unique_nonempty(v, "study.seeds")

    @field_validator("ablations")
    @classmethod
    def _ablations(cls, v: list[str]) -> list[str]:
        return [_choices(a, ABLATIONS, "ablation") for a in v]


class DataSection(_Strict):
    dir: str = Field(
        description="data directory (archives under <dir>/<dataset>/); "
        f"${DATA_DIR_ENV} overrides it"
    )
    work_dir: str | None = Field(
        None, description="downloads/extractions; None = $DMLSTUDY_WORK_DIR or ~/.cache"
    )


class PrepareSection(_Strict):
    image_size: int = Field(gt=0, description="images are cached at this size (pixels)")
    val_fraction: float = Field(
        gt=0, lt=1, description="fraction of train classes held out for validation"
    )
    split_seed: int = 0
    max_classes_per_split: int | None = Field(None, gt=1, description="cap (tiny profile)")


class DatasetPreset(_Strict):
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


class ProfileSection(_Strict):
    prepare: dict[str, Any] = Field(default_factory=dict)
    train: dict[str, Any] = Field(default_factory=dict)
    loss_overrides: dict[str, dict[str, Any]] = Field(default_factory=dict)


class AblationSection(_Strict):
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


class MultimodalSection(_Strict):
    train: dict[str, Any] = Field(
        default_factory=dict, description="budget overrides (coarse-label runs)"
    )
    loss_params: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="loss -> hyper-parameters the short budget needs (e.g. rsw phase2_epochs)",
    )


class StudyConfig(_Strict):
    """The whole ``params.yaml``."""

    study: StudySection
    data: DataSection
    train: dict[str, Any] = Field(
        default_factory=dict, description="TrainSettings common to all datasets"
    )
    datasets: dict[str, DatasetPreset]
    losses: dict[str, dict[str, Any]]
    profiles: dict[str, ProfileSection] = Field(default_factory=dict)
    ablations: dict[str, AblationSection] = Field(default_factory=dict)
    multimodal: MultimodalSection = Field(default_factory=MultimodalSection)

    @model_validator(mode="after")
    def _cross_check(self) -> StudyConfig:
        for name in self.datasets:
            _choices(name, DATASETS, "dataset preset (datasets.<name>)")
        for d in set(self.study.datasets) | set(self.study.multimodal):
            if d not in self.datasets:
                raise ValueError(f"study lists dataset {d!r} but params has no preset datasets.{d}")
        for d in self.study.multimodal:
            _choices(d, COARSE_DATASETS, "dataset with coarse labels (study.multimodal)")
            if d not in self.study.datasets:
                raise ValueError(
                    f"study.multimodal lists {d!r}, which is not in study.datasets: add it to "
                    f"study.datasets or remove it from study.multimodal"
                )
        for d in self.study.ablations:
            if d not in self.ablations:
                raise ValueError(f"study.ablations lists {d!r} but params has no ablations.{d}")
        if self.study.profile != "full" and self.study.profile not in self.profiles:
            raise ValueError(
                f"study.profile is {self.study.profile!r} but params has no "
                f"profiles.{self.study.profile}"
            )
        from dmlstudy.losses import list_losses

        for name, section in self.losses.items():
            _choices(name, list_losses(), "loss (losses.<name>)")
            _mapping(section.get("train"), f"losses.{name}.train", "TrainSettings fields -> values")
            _mapping(
                section.get("per_dataset"),
                f"losses.{name}.per_dataset",
                "dataset names -> overrides",
            )
            params, train, per_dataset = split_loss_section(section)
            check_loss_params(name, params, f"losses.{name}")
            check_train_overrides(train, f"losses.{name}.train")
            for d, values in per_dataset.items():
                _choices(d, DATASETS, f"dataset (losses.{name}.per_dataset.<dataset>)")
                _mapping(
                    values,
                    f"losses.{name}.per_dataset.{d}",
                    "hyper-parameters (and train) -> values",
                )
                _mapping(
                    values.get("train"),
                    f"losses.{name}.per_dataset.{d}.train",
                    "TrainSettings fields -> values",
                )
                check_loss_params(
                    name,
                    {k: v for k, v in values.items() if k != "train"},
                    f"losses.{name}.per_dataset.{d}",
                )
                check_train_overrides(
                    values.get("train") or {}, f"losses.{name}.per_dataset.{d}.train"
                )
        for name in self.study.losses:
            if name not in self.losses:
                raise ValueError(
                    f"study.losses lists {name!r} but params has no section losses.{name}"
                )
        check_train_overrides(self.train, "train")
        for name, section in [(f"datasets.{k}", v) for k, v in self.datasets.items()] + [
            (f"profiles.{k}", v) for k, v in self.profiles.items()
        ]:
            check_train_overrides(section.train, f"{name}.train")
        for name, prof in self.profiles.items():
            for loss, values in prof.loss_overrides.items():
                _choices(loss, list_losses(), f"loss (profiles.{name}.loss_overrides.<loss>)")
                check_loss_params(loss, values, f"profiles.{name}.loss_overrides.{loss}")
        for prof in self.profiles.values():
            PrepareSection.model_validate(
                {"image_size": 1, "val_fraction": 0.5, **prof.prepare}
            )  # keys and types only
        for name, abl in self.ablations.items():
            _choices(name, ABLATIONS, "ablation (ablations.<name>)")
            _choices(abl.loss, list_losses(), f"loss (ablations.{name}.loss)")
            check_train_overrides(abl.train, f"ablations.{name}.train")
            check_loss_params(abl.loss, abl.loss_params, f"ablations.{name}.loss_params")
        check_train_overrides(self.multimodal.train, "multimodal.train")
        for loss, values in self.multimodal.loss_params.items():
            _choices(loss, list_losses(), "loss (multimodal.loss_params.<loss>)")
            check_loss_params(loss, values, f"multimodal.loss_params.{loss}")
        return self

    def data_dir(self) -> Path:
        """The data directory: ``$DMLSTUDY_DATA_DIR`` if set, else ``data.dir``."""
        return Path(os.environ.get(DATA_DIR_ENV) or self.data.dir)

    def published_loss_params(self, loss: str) -> dict[str, Any]:
        """``losses.<loss>`` without its ``train`` / ``per_dataset`` keys: the published
        defaults."""
        return split_loss_section(self.losses.get(loss, {}))[0]

    def loss_params(self, dataset: str, loss: str) -> dict[str, Any]:
        """Constructor keywords of ``loss`` on ``dataset``: ``losses.<loss>`` (published) updated by
        its ``per_dataset.<dataset>`` values, then by the active profile's ``loss_overrides``."""
        params, _, per_dataset = split_loss_section(self.losses.get(loss, {}))
        values = {
            **params,
            **{k: v for k, v in per_dataset.get(dataset, {}).items() if k != "train"},
        }
        if self.study.profile in self.profiles:
            values.update(self.profiles[self.study.profile].loss_overrides.get(loss, {}))
        return values

    def loss_train(self, dataset: str, loss: str) -> dict[str, Any]:
        """TrainSettings that ``loss`` brings on ``dataset``: ``losses.<loss>.train`` updated by
        ``losses.<loss>.per_dataset.<dataset>.train``."""
        _, train, per_dataset = split_loss_section(self.losses.get(loss, {}))
        return {**train, **(per_dataset.get(dataset, {}).get("train") or {})}

    def prepare_settings(self, dataset: str) -> PrepareSection:
        """The dataset's prepare settings with the active profile applied."""
        base = self.datasets[dataset].prepare.model_dump()
        if self.study.profile in self.profiles:
            base.update(self.profiles[self.study.profile].prepare)
        return PrepareSection.model_validate(base)


def load_config(path: str | Path = "params.yaml") -> StudyConfig:
    """Read and validate ``params.yaml``; raises :class:`ParamsError` naming the bad key."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"params file not found: {path.resolve()} (run from the repository root)")
    with path.open() as fh:
        raw = yaml.safe_load(fh) or {}
    return config_from_dict(raw, source=str(path))


def config_from_dict(raw: dict[str, Any], source: str = "params") -> StudyConfig:
    """Validate a params mapping; pydantic errors are re-raised as one :class:`ParamsError`."""
    try:
        return StudyConfig.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"  {key}: {msg}" if key else f"  {msg}")
        raise ParamsError(f"invalid {source}:\n" + "\n".join(lines)) from None
    except ParamsError as exc:
        raise ParamsError(f"invalid {source}: {exc}") from None
