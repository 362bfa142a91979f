"""``StudyConfig``: the whole ``params.yaml`` with its cross-section checks (every loss, dataset
and ablation a section names exists; every free-form value is a valid loss hyper-parameter or
``TrainSettings`` field) and the merges the pipeline reads (loss parameters, prepare settings).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, model_validator

from dmlstudy.config.checks import check_loss_params, check_train_overrides
from dmlstudy.config.errors import describe_errors
from dmlstudy.config.sections import (
    ABLATIONS,
    COARSE_DATASETS,
    DATASETS,
    LOSS_SECTION_KEYS,
    AblationSection,
    DataSection,
    DatasetPreset,
    MultimodalSection,
    PrepareSection,
    ProfileSection,
    StrictSection,
    StudySection,
    check_mapping,
    split_loss_section,
)
from dmlstudy.config.suggest import check_choice, did_you_mean
from dmlstudy.config.tuning import TuningSection
from dmlstudy.data.sources import default_work_dir, resolve_data_dir


class StudyConfig(StrictSection):
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
    tuning: TuningSection = Field(default_factory=TuningSection)

    @model_validator(mode="after")
    def _cross_check(self) -> StudyConfig:
        self._check_study()
        self._check_losses()
        check_train_overrides(self.train, "train")
        for name, section in [(f"datasets.{k}", v) for k, v in self.datasets.items()] + [
            (f"profiles.{k}", v) for k, v in self.profiles.items()
        ]:
            check_train_overrides(section.train, f"{name}.train")
        self._check_profiles_ablations_multimodal()
        return self

    def _check_study(self) -> None:
        for name in self.datasets:
            check_choice(name, DATASETS, "dataset preset (datasets.<name>)")
        for d in set(self.study.datasets) | set(self.study.multimodal):
            if d not in self.datasets:
                raise ValueError(f"study lists dataset {d!r} but params has no preset datasets.{d}")
        for d in self.study.multimodal:
            check_choice(d, COARSE_DATASETS, "dataset with coarse labels (study.multimodal)")
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
                f"{did_you_mean(self.study.profile, ['full', *self.profiles])}. "
                f"Valid choices: {', '.join(dict.fromkeys(['full', *self.profiles]))}"
            )
        for name in self.study.losses:
            if name not in self.losses:
                raise ValueError(
                    f"study.losses lists {name!r} but params has no section losses.{name}"
                )
        for name, prof in self.profiles.items():
            for loss in prof.losses or []:
                if loss not in self.losses:
                    raise ValueError(
                        f"profiles.{name}.losses lists {loss!r} but params has no section "
                        f"losses.{loss}"
                    )
            for abl in prof.ablations or []:
                if abl not in self.ablations:
                    raise ValueError(
                        f"profiles.{name}.ablations lists {abl!r} but params has no ablations.{abl}"
                    )
        paper = self.profiles.get("paper")
        if paper is not None and (paper.losses is None or paper.ablations is None):
            raise ValueError(
                "profiles.paper needs `losses` and `ablations` (`[]` for none): "
                "studies/paper/dvc.yaml and dvc.yaml's fingerprint stage read them (DVC fails "
                "on a missing key)"
            )
        studied = self.everything().study.losses
        for name in self.study.untuned:
            if name not in studied:
                raise ValueError(
                    f"study.untuned lists {name!r}, which neither study.losses nor a profile's "
                    f"losses lists: add it to study.losses or remove it from study.untuned"
                )

    def for_profile(self, profile: str) -> StudyConfig:
        """This config as ``study.profile: <profile>`` reads it, with the profile's ``losses``
        and ``ablations`` (where it names them) as ``study.losses`` and ``study.ablations``:
        what ``studies/paper/dvc.yaml`` trains under that profile."""
        if profile != "full" and profile not in self.profiles:
            raise ValueError(
                f"params.yaml has no profiles.{profile}; valid choices: "
                f"{', '.join(dict.fromkeys(['full', *self.profiles]))}"
            )
        update: dict[str, Any] = {"profile": profile}
        prof = self.profiles.get(profile)
        if prof is not None and prof.losses is not None:
            update["losses"] = list(prof.losses)
        if prof is not None and prof.ablations is not None:
            update["ablations"] = list(prof.ablations)
        return self.model_copy(update={"study": self.study.model_copy(update=update)})

    def everything(self) -> StudyConfig:
        """``study.losses`` and ``study.ablations`` widened by every profile's (in that order):
        what check_params, the code fingerprints and the tuning campaign cover, so that a loss
        the paper-grade study trains is tuned and checked though the quick default leaves it
        out. The profile stays the study's own."""
        losses = list(self.study.losses)
        ablations = list(self.study.ablations)
        for prof in self.profiles.values():
            losses += [x for x in prof.losses or [] if x not in losses]
            ablations += [x for x in prof.ablations or [] if x not in ablations]
        study = self.study.model_copy(update={"losses": losses, "ablations": ablations})
        return self.model_copy(update={"study": study})

    def _check_losses(self) -> None:
        from dmlstudy.losses import list_losses  # not at module level: see config/checks.py

        for name, section in self.losses.items():
            check_choice(name, list_losses(), "loss (losses.<name>)")
            where = f"losses.{name}"
            check_mapping(section.get("train"), f"{where}.train", "TrainSettings fields -> values")
            check_mapping(
                section.get("per_dataset"), f"{where}.per_dataset", "dataset names -> overrides"
            )
            params, train, per_dataset = split_loss_section(section)
            check_loss_params(name, params, where, LOSS_SECTION_KEYS)
            check_train_overrides(train, f"{where}.train")
            for d, values in per_dataset.items():
                check_choice(d, DATASETS, f"dataset ({where}.per_dataset.<dataset>)")
                at = f"{where}.per_dataset.{d}"
                check_mapping(values, at, "hyper-parameters (and train) -> values")
                check_mapping(values.get("train"), f"{at}.train", "TrainSettings fields -> values")
                check_loss_params(name, {k: v for k, v in values.items() if k != "train"}, at)
                check_train_overrides(values.get("train") or {}, f"{at}.train")

    def _check_profiles_ablations_multimodal(self) -> None:
        from dmlstudy.losses import list_losses

        for name, prof in self.profiles.items():
            for loss, values in prof.loss_overrides.items():
                check_choice(loss, list_losses(), f"loss (profiles.{name}.loss_overrides.<loss>)")
                check_loss_params(loss, values, f"profiles.{name}.loss_overrides.{loss}")
            try:  # keys and types only
                PrepareSection.model_validate(
                    {"image_size": 1, "val_fraction": 0.5, **prof.prepare}
                )
            except ValidationError as exc:
                lines = describe_errors(exc.errors(), f"profiles.{name}.prepare")
                raise ValueError("\n".join(line.strip() for line in lines)) from None
        for name, abl in self.ablations.items():
            check_choice(name, ABLATIONS, "ablation (ablations.<name>)")
            check_choice(abl.loss, list_losses(), f"loss (ablations.{name}.loss)")
            check_train_overrides(abl.train, f"ablations.{name}.train")
            check_loss_params(abl.loss, abl.loss_params, f"ablations.{name}.loss_params")
            if abl.train_from is not None:
                check_choice(abl.train_from, list_losses(), f"loss (ablations.{name}.train_from)")
        check_train_overrides(self.multimodal.train, "multimodal.train")
        for loss, values in self.multimodal.loss_params.items():
            check_choice(loss, list_losses(), "loss (multimodal.loss_params.<loss>)")
            check_loss_params(loss, values, f"multimodal.loss_params.{loss}")

    def data_dir(self) -> Path:
        """The data directory: ``$DMLSTUDY_DATA_DIR`` if set, else ``data.dir``."""
        return resolve_data_dir(self.data.dir)

    def work_dir(self) -> Path:
        """Downloads and extractions: ``data.work_dir``, else ``$DMLSTUDY_WORK_DIR`` or
        ~/.cache/dmlstudy (as :func:`dmlstudy.data.load_index` resolves it)."""
        return Path(self.data.work_dir) if self.data.work_dir else default_work_dir()

    def tuned_datasets(self, loss: str) -> list[str]:
        """The datasets with tuned values of ``loss`` (``losses.<loss>.per_dataset.<dataset>``;
        an empty entry counts: the campaign's published values won)."""
        return list(split_loss_section(self.losses.get(loss, {}))[2])

    def published_loss_params(self, loss: str) -> dict[str, Any]:
        """``losses.<loss>`` without its ``train`` / ``per_dataset`` keys: the published
        defaults."""
        return split_loss_section(self.losses.get(loss, {}))[0]

    def loss_params(self, dataset: str, loss: str, tuned: bool = True) -> dict[str, Any]:
        """Constructor keywords of ``loss`` on ``dataset``: ``losses.<loss>`` (published) updated by
        its ``per_dataset.<dataset>`` values (unless ``tuned=False``: the tuning campaign starts
        from the published values), then by the active profile's ``loss_overrides``."""
        params, _, per_dataset = split_loss_section(self.losses.get(loss, {}))
        tuned_values = per_dataset.get(dataset, {}) if tuned else {}
        values = {**params, **{k: v for k, v in tuned_values.items() if k != "train"}}
        if self.study.profile in self.profiles:
            values.update(self.profiles[self.study.profile].loss_overrides.get(loss, {}))
        return values

    def loss_train(self, dataset: str, loss: str, tuned: bool = True) -> dict[str, Any]:
        """TrainSettings that ``loss`` brings on ``dataset``: ``losses.<loss>.train`` updated by
        ``losses.<loss>.per_dataset.<dataset>.train`` (unless ``tuned=False``)."""
        _, train, per_dataset = split_loss_section(self.losses.get(loss, {}))
        tuned_values = per_dataset.get(dataset, {}) if tuned else {}
        return {**train, **(tuned_values.get("train") or {})}

    def prepare_settings(self, dataset: str) -> PrepareSection:
        """The dataset's prepare settings with the active profile applied."""
        base = self.datasets[dataset].prepare.model_dump()
        if self.study.profile in self.profiles:
            base.update(self.profiles[self.study.profile].prepare)
        return PrepareSection.model_validate(base)
