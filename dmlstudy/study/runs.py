"""From validated params to training runs: ``TrainSettings`` per (dataset, loss, seed) and the
variants of each ablation study.

Loss hyper-parameters: ``losses.<loss>`` (published) → ``losses.<loss>.per_dataset.<d>`` (tuned
on validation) → ``profiles.<profile>.loss_overrides.<loss>`` → ablation variant.
Precedence of training settings (later wins): ``train`` (common) → ``datasets.<d>.train``
(protocol) → ``losses.<loss>.train`` → ``losses.<loss>.per_dataset.<d>.train`` → ablation/multimodal
budget → ``profiles.<profile>.train`` (tiny: it caps every budget) → what an ablation variant
changes. An ablation with ``train_from: <other>`` takes the two ``losses.`` layers from that loss;
an arm with its own tuning (``per_dataset``) replaces the loss's ``per_dataset.<d>`` layers (both
hyper-parameters and training settings) with its own values on ``d``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from dmlstudy.config import (
    StudyConfig,
    check_loss_params,
    check_train_overrides,
    split_loss_section,
)
from dmlstudy.config.checks import check_both_phases
from dmlstudy.config.tuning import check_dimension
from dmlstudy.training.settings import TrainSettings

#: One layer of a run's settings: the params.yaml key that holds it and its values.
Layer = tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class Sources:
    """The params.yaml keys behind a run's ``loss_params`` / ``budget`` / ``extra`` arguments
    (ablation arms and multi-modal runs name theirs; the labels appear on the run's page)."""

    loss_params: str = "run loss_params"
    budget: str = "run budget"
    extra: str = "run extra"


def loss_param_layers(
    config: StudyConfig,
    dataset: str,
    loss: str,
    loss_params: dict[str, Any] | None = None,
    tuned: bool = True,
    sources: Sources = Sources(),
    own: Layer | None = None,
) -> list[Layer]:
    """The layers of ``loss``'s hyper-parameters on ``dataset``, the most general first; ``own``
    (an ablation arm's own tuned values: key, values) replaces ``losses.<loss>.per_dataset.<d>``."""
    params, _, per_dataset = split_loss_section(config.losses.get(loss, {}))
    tuned_values = per_dataset.get(dataset, {}) if tuned else {}
    at = f"losses.{loss}.per_dataset.{dataset}"
    if own is not None:
        at, tuned_values = own
    layers: list[Layer] = [
        (f"losses.{loss}", params),
        (at, {k: v for k, v in tuned_values.items() if k != "train"}),
    ]
    if config.study.profile in config.profiles:
        overrides = config.profiles[config.study.profile].loss_overrides.get(loss, {})
        layers.append((f"profiles.{config.study.profile}.loss_overrides.{loss}", overrides))
    layers.append((sources.loss_params, dict(loss_params or {})))
    return layers


def train_layers(
    config: StudyConfig,
    dataset: str,
    loss: str | None = None,
    budget: dict[str, Any] | None = None,
    tuned: bool = True,
    extra: dict[str, Any] | None = None,
    sources: Sources = Sources(),
    own: Layer | None = None,
    train_from: str | None = None,
) -> list[Layer]:
    """The layers of the TrainSettings values of a run (module docstring's precedence):
    ``train_from`` names the loss whose ``losses.`` layers apply (default ``loss``), ``own``
    replaces its ``per_dataset.<d>`` values (an ablation arm's own tuning)."""
    layers: list[Layer] = [
        ("train", config.train),
        (f"datasets.{dataset}.train", config.datasets[dataset].train),
    ]
    loss = train_from or loss
    if loss is not None:
        _, train, per_dataset = split_loss_section(config.losses.get(loss, {}))
        tuned_values = per_dataset.get(dataset, {}) if tuned else {}
        at = f"losses.{loss}.per_dataset.{dataset}"
        if own is not None:
            at, tuned_values = own
        layers += [
            (f"losses.{loss}.train", train),
            (f"{at}.train", tuned_values.get("train") or {}),
        ]
    layers.append((sources.budget, dict(budget or {})))
    if config.study.profile in config.profiles:
        layers.append(
            (f"profiles.{config.study.profile}.train", config.profiles[config.study.profile].train)
        )
    layers.append((sources.extra, dict(extra or {})))
    return layers


def merge(layers: list[Layer]) -> dict[str, Any]:
    """The values of ``layers``, a later layer winning.

    >>> merge([("a", {"lr": 1, "epochs": 2}), ("b", {"lr": 3})])
    {'lr': 3, 'epochs': 2}
    """
    return {k: v for _, values in layers for k, v in values.items()}


def deciding_keys(layers: list[Layer]) -> dict[str, str]:
    """``{setting: the params.yaml key that decides it}``.

    >>> deciding_keys([("train", {"lr": 1, "epochs": 2}), ("losses.x.train", {"lr": 3})])
    {'lr': 'losses.x.train.lr', 'epochs': 'train.epochs'}
    """
    return {k: f"{where}.{k}" for where, values in layers for k in values}


def train_overrides(
    config: StudyConfig,
    dataset: str,
    loss: str | None = None,
    budget: dict[str, Any] | None = None,
    tuned: bool = True,
) -> dict[str, Any]:
    """TrainSettings values for ``dataset`` (and ``loss``, and an ablation/multimodal ``budget``)
    under the active profile (no paths/seed)."""
    return merge(train_layers(config, dataset, loss, budget, tuned))


def train_settings(
    config: StudyConfig,
    dataset: str,
    loss: str,
    seed: int,
    *,
    prepared_dir: str | Path,
    out_dir: str | Path,
    label_level: str = "fine",
    loss_params: dict[str, Any] | None = None,
    budget: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    tuned: bool = True,
    own: Layer | None = None,
    train_from: str | None = None,
) -> TrainSettings:
    """The ``TrainSettings`` of one run; ``loss_params`` update ``losses.<loss>``; ``budget``
    (ablations / the multi-modal experiment) applies before the profile, ``extra`` (what a
    variant changes) after it; ``own`` and ``train_from``: :func:`train_layers`."""
    return TrainSettings(
        prepared_dir=Path(prepared_dir),
        out_dir=Path(out_dir),
        loss=loss,
        loss_params=merge(loss_param_layers(config, dataset, loss, loss_params, tuned, own=own)),
        seed=seed,
        label_level=label_level,
        **merge(
            train_layers(
                config, dataset, loss, budget, tuned, extra, own=own, train_from=train_from
            )
        ),
    )


@dataclass(frozen=True)
class Variant:
    """One arm of an ablation: a label, the loss, and what it changes."""

    label: str
    loss: str
    loss_params: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)  # what this variant changes
    value: Any = None  # the swept value (sweeps), else None
    budget: dict[str, Any] = field(
        default_factory=dict
    )  # ablations.<name>.train, shared by the variants
    train_from: str | None = None  # ablations.<name>.train_from: whose training settings
    where: str = ""  # the params.yaml key of this arm (its own tuning lives below it)
    space: dict[str, Any] = field(default_factory=dict)  # own search space (tuning.space format)
    per_dataset: dict[str, dict[str, Any]] | None = None  # its own tuned values (None: the loss's)
    ablation: str = ""  # the name of its ablations.<name> section

    def own(self, dataset: str) -> Layer | None:
        """This arm's own tuned values on ``dataset`` (key, values), or None where it takes the
        loss's ``per_dataset`` values (no own tuning, or the campaign has not tuned it there)."""
        if not self.per_dataset or dataset not in self.per_dataset:
            return None
        return (f"{self.where}.per_dataset.{dataset}", dict(self.per_dataset[dataset] or {}))

    def run_spec(self, dataset: str) -> RunSpec:
        """This arm on ``dataset`` as one run of the study (with the params.yaml keys behind its
        arguments): what the ablation stage, the paper-grade study and check_params train."""
        name, at = self.ablation, self.where
        return RunSpec(
            f"ablation {name} ({self.label}) on {dataset}",
            dataset,
            self.loss,
            self.loss_params,
            self.budget,
            self.train,
            sources=Sources(f"{at}.loss_params", f"ablations.{name}.train", f"{at}.train"),
            where=f"ablations.{name} ({self.label}) on {dataset}",
            own=self.own(dataset),
            train_from=self.train_from,
        )

    def settings(
        self,
        config: StudyConfig,
        dataset: str,
        seed: int,
        *,
        prepared_dir: str | Path,
        out_dir: str | Path,
    ) -> TrainSettings:
        """This arm's run on ``dataset`` and ``seed`` (:meth:`RunSpec.settings` of its
        :meth:`run_spec`)."""
        return self.run_spec(dataset).settings(config, seed, prepared_dir, out_dir)


#: Keys of one named variant: what it changes, and its own tuning (an arm whose loss changes shape).
VARIANT_KEYS = ("loss_params", "train", "space", "per_dataset")


def _check_own_tuning(loss: str, spec: dict[str, Any], where: str) -> None:
    """A variant's ``space`` (tuning.space format) and ``per_dataset.<d>`` values are valid."""
    for key, dim in (spec.get("space") or {}).items():
        for value in check_dimension(key, dim, f"{where}.space"):
            if key.startswith("train."):
                check_train_overrides({key.removeprefix("train."): value}, f"{where}.space")
            else:
                check_loss_params(loss, {key: value}, f"{where}.space")
    if spec.get("per_dataset") and not spec.get("space"):
        raise ValueError(
            f"{where}.per_dataset: an arm's own tuned values come from the campaign over its "
            f"own search space; declare {where}.space"
        )
    for d, values in (spec.get("per_dataset") or {}).items():
        values = dict(values or {})
        check_train_overrides(values.pop("train", None) or {}, f"{where}.per_dataset.{d}.train")
        check_loss_params(loss, values, f"{where}.per_dataset.{d}")


def ablation_variants(config: StudyConfig, name: str) -> list[Variant]:
    """The variants of ``ablations.<name>``: its named ``variants`` then its ``sweep`` values."""
    abl = config.ablations[name]
    out: list[Variant] = []
    check_both_phases(abl.loss, abl.loss_params, f"ablations.{name}.loss_params")
    for label, spec in abl.variants.items():
        at = f"ablations.{name}.variants.{label}"
        unknown = set(spec) - set(VARIANT_KEYS)
        if unknown:
            raise ValueError(
                f"{at}: unknown key(s) {sorted(unknown)}; valid keys: {', '.join(VARIANT_KEYS)}"
            )
        check_loss_params(abl.loss, spec.get("loss_params", {}), f"{at}.loss_params")
        check_both_phases(abl.loss, spec.get("loss_params", {}), f"{at}.loss_params")
        check_train_overrides(spec.get("train", {}), f"{at}.train")
        _check_own_tuning(abl.loss, spec, at)
        out.append(
            Variant(
                label,
                abl.loss,
                {**abl.loss_params, **spec.get("loss_params", {})},
                dict(spec.get("train", {})),
                budget=dict(abl.train),
                train_from=abl.train_from,
                where=at,
                space=dict(spec.get("space") or {}),
                per_dataset=dict(spec.get("per_dataset") or {}) if spec.get("space") else None,
                ablation=name,
            )
        )
    for key, values in abl.sweep.items():
        section, _, param = key.partition(".")
        if section not in ("loss_params", "train") or not param:
            raise ValueError(
                f"ablations.{name}.sweep.{key}: keys are 'loss_params.<name>' or 'train.<name>'"
            )
        for value in values:
            where = f"ablations.{name}.sweep.{section}"  # the checks append .<param>
            if section == "loss_params":
                check_loss_params(abl.loss, {param: value}, where)
                check_both_phases(abl.loss, {param: value}, where)
                out.append(
                    Variant(
                        f"{param}={value}",
                        abl.loss,
                        {**abl.loss_params, param: value},
                        {},
                        value,
                        dict(abl.train),
                        abl.train_from,
                        f"ablations.{name}.sweep",
                        ablation=name,
                    )
                )
            else:
                check_train_overrides({param: value}, where)
                out.append(
                    Variant(
                        f"{param}={value}",
                        abl.loss,
                        dict(abl.loss_params),
                        {param: value},
                        value,
                        dict(abl.train),
                        abl.train_from,
                        f"ablations.{name}.sweep",
                        ablation=name,
                    )
                )
    if not out:
        raise ValueError(f"ablations.{name} has neither variants nor sweep values")
    assert [v.label for v in out] == abl.arm_labels()
    return out


@dataclass(frozen=True)
class RunSpec:
    """One training the study defines (before seeds and paths): what :func:`train_settings` takes
    besides them, and the params.yaml keys behind its arguments."""

    label: str
    dataset: str
    loss: str
    loss_params: dict[str, Any] = field(default_factory=dict)
    budget: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    label_level: str = "fine"
    sources: Sources = Sources()
    where: str = ""  # how check_params' errors name the run ("datasets.omniglot + losses.x")
    own: Layer | None = None  # an ablation arm's own tuned values (Variant.own)
    train_from: str | None = None  # ablations.<name>.train_from

    def settings(
        self, config: StudyConfig, seed: int, prepared_dir: str | Path, out_dir: str | Path
    ) -> TrainSettings:
        """This run's :class:`TrainSettings` for ``seed`` (what its stage trains)."""
        return train_settings(
            config,
            self.dataset,
            self.loss,
            seed,
            prepared_dir=prepared_dir,
            out_dir=out_dir,
            label_level=self.label_level,
            loss_params=self.loss_params,
            budget=self.budget,
            extra=self.extra,
            own=self.own,
            train_from=self.train_from,
        )

    def layers(self, config: StudyConfig) -> tuple[list[Layer], list[Layer]]:
        """(hyper-parameter layers, TrainSettings layers) of this run."""
        return (
            loss_param_layers(
                config,
                self.dataset,
                self.loss,
                self.loss_params,
                sources=self.sources,
                own=self.own,
            ),
            train_layers(
                config,
                self.dataset,
                self.loss,
                self.budget,
                extra=self.extra,
                sources=self.sources,
                own=self.own,
                train_from=self.train_from,
            ),
        )


def study_runs(config: StudyConfig) -> list[RunSpec]:
    """Every training of the study, one per seed each: ``study.datasets × study.losses``, the arms
    of ``study.ablations`` on every study dataset, and the multi-modal runs."""
    runs = []
    for d in config.study.datasets:
        runs += [
            RunSpec(f"{d}/{loss}", d, loss, where=f"datasets.{d} + losses.{loss}")
            for loss in config.study.losses
        ]
        for name in config.study.ablations:
            runs += [v.run_spec(d) for v in ablation_variants(config, name)]
    for d in config.study.multimodal:
        for loss in config.study.losses:
            sources = Sources(f"multimodal.loss_params.{loss}", "multimodal.train")
            runs.append(
                RunSpec(
                    f"multimodal {d}/{loss}",
                    d,
                    loss,
                    config.multimodal.loss_params.get(loss) or {},
                    config.multimodal.train,
                    label_level="coarse",
                    sources=sources,
                    where=f"multimodal on {d} + losses.{loss}",
                )
            )
    return runs


#: TrainSettings fields the pipeline sets from dvc.yaml's stage parameters, not from params.yaml.
STAGE_FIELDS = ("prepared_dir", "out_dir", "loss", "seed", "label_level")


def settings_provenance(config: StudyConfig, run: RunSpec, settings: TrainSettings) -> pd.DataFrame:
    """Every value of a run's ``settings`` with the params.yaml key that decided it (``set by``)
    and the more general keys set to another value that it overrides (``shadows``); the run's
    page shows it, so that a reader sees which key to edit."""
    loss_layers, train_layers_ = run.layers(config)
    values = settings.model_dump(mode="json")
    values.update({f"loss_params.{k}": v for k, v in values.pop("loss_params").items()})
    rows = []
    for name, value in values.items():
        setting = name.removeprefix("loss_params.")
        layers = loss_layers if name.startswith("loss_params.") else train_layers_
        key = deciding_keys(layers).get(setting)
        shadowed = [
            f"{where}.{setting} = {vals[setting]!r}"
            for where, vals in layers
            if setting in vals and f"{where}.{setting}" != key and vals[setting] != value
        ]
        if key is None:
            key = "dvc.yaml (stage)" if name in STAGE_FIELDS else "default"
        rows.append(
            {
                "setting": name,
                "value": "—" if value is None else value,  # None: not set (pandas would show NaN)
                "set by": key,
                "shadows": "; ".join(shadowed),
            }
        )
    return pd.DataFrame(rows).set_index("setting")
