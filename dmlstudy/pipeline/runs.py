"""From validated params to training runs: ``TrainSettings`` per (dataset, loss, seed) and the
variants of each ablation study.

Loss hyper-parameters: ``losses.<loss>`` (published) → ``losses.<loss>.per_dataset.<d>`` (tuned
on validation) → ``profiles.<profile>.loss_overrides.<loss>`` → ablation variant.
Precedence of training settings (later wins): ``train`` (common) → ``datasets.<d>.train``
(protocol) → ``losses.<loss>.train`` → ``losses.<loss>.per_dataset.<d>.train`` → ablation/multimodal
budget → ``profiles.<profile>.train`` (tiny: it caps every budget) → what an ablation variant
changes.

>>> from dmlstudy.pipeline.runs import run_path
>>> run_path("work/runs/omniglot", "triplet", 2).as_posix()
'work/runs/omniglot/triplet/seed2'
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
from dmlstudy.training.settings import TrainSettings

#: One run's folder below a runs root; dvc.yaml's train stage writes the same layout
#: (tests/pipeline/test_dvc_yaml.py checks that they agree).
RUN_LAYOUT = "{loss}/seed{seed}"


def run_path(runs_root: str | Path, loss: str, seed: int) -> Path:
    """Folder of one training run below ``runs_root``."""
    return Path(runs_root) / RUN_LAYOUT.format(loss=loss, seed=seed)


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
) -> list[Layer]:
    """The layers of ``loss``'s hyper-parameters on ``dataset``, the most general first."""
    params, _, per_dataset = split_loss_section(config.losses.get(loss, {}))
    tuned_values = per_dataset.get(dataset, {}) if tuned else {}
    layers: list[Layer] = [
        (f"losses.{loss}", params),
        (
            f"losses.{loss}.per_dataset.{dataset}",
            {k: v for k, v in tuned_values.items() if k != "train"},
        ),
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
) -> list[Layer]:
    """The layers of the TrainSettings values of a run (module docstring's precedence)."""
    layers: list[Layer] = [
        ("train", config.train),
        (f"datasets.{dataset}.train", config.datasets[dataset].train),
    ]
    if loss is not None:
        _, train, per_dataset = split_loss_section(config.losses.get(loss, {}))
        tuned_values = per_dataset.get(dataset, {}) if tuned else {}
        layers += [
            (f"losses.{loss}.train", train),
            (f"losses.{loss}.per_dataset.{dataset}.train", tuned_values.get("train") or {}),
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
) -> TrainSettings:
    """The ``TrainSettings`` of one run; ``loss_params`` update ``losses.<loss>``; ``budget``
    (ablations / the multi-modal experiment) applies before the profile, ``extra`` (what a
    variant changes) after it."""
    return TrainSettings(
        prepared_dir=Path(prepared_dir),
        out_dir=Path(out_dir),
        loss=loss,
        loss_params=merge(loss_param_layers(config, dataset, loss, loss_params, tuned)),
        seed=seed,
        label_level=label_level,
        **merge(train_layers(config, dataset, loss, budget, tuned, extra)),
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


def ablation_variants(config: StudyConfig, name: str) -> list[Variant]:
    """The variants of ``ablations.<name>``: its named ``variants`` then its ``sweep`` values."""
    abl = config.ablations[name]
    out: list[Variant] = []
    for label, spec in abl.variants.items():
        unknown = set(spec) - {"loss_params", "train"}
        if unknown:
            raise ValueError(
                f"ablations.{name}.variants.{label}: unknown key(s) {sorted(unknown)}; "
                "valid keys: loss_params, train"
            )
        check_loss_params(
            abl.loss, spec.get("loss_params", {}), f"ablations.{name}.variants.{label}.loss_params"
        )
        check_train_overrides(spec.get("train", {}), f"ablations.{name}.variants.{label}.train")
        out.append(
            Variant(
                label,
                abl.loss,
                {**abl.loss_params, **spec.get("loss_params", {})},
                dict(spec.get("train", {})),
                budget=dict(abl.train),
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
                out.append(
                    Variant(
                        f"{param}={value}",
                        abl.loss,
                        {**abl.loss_params, param: value},
                        {},
                        value,
                        dict(abl.train),
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

    def layers(self, config: StudyConfig) -> tuple[list[Layer], list[Layer]]:
        """(hyper-parameter layers, TrainSettings layers) of this run."""
        return (
            loss_param_layers(
                config, self.dataset, self.loss, self.loss_params, sources=self.sources
            ),
            train_layers(
                config, self.dataset, self.loss, self.budget, extra=self.extra, sources=self.sources
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
            for v in ablation_variants(config, name):
                at = f"ablations.{name}." + (f"variants.{v.label}" if v.value is None else "sweep")
                sources = Sources(f"{at}.loss_params", f"ablations.{name}.train", f"{at}.train")
                runs.append(
                    RunSpec(
                        f"ablation {name} ({v.label}) on {d}",
                        d,
                        v.loss,
                        v.loss_params,
                        v.budget,
                        v.train,
                        sources=sources,
                        where=f"ablations.{name} ({v.label}) on {d}",
                    )
                )
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
            {"setting": name, "value": value, "set by": key, "shadows": "; ".join(shadowed)}
        )
    return pd.DataFrame(rows).set_index("setting")
