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

from dmlstudy.config import StudyConfig, check_loss_params, check_train_overrides
from dmlstudy.training.settings import TrainSettings

#: One run's folder below a runs root; dvc.yaml's train stage writes the same layout
#: (tests/pipeline/test_dvc_yaml.py checks that they agree).
RUN_LAYOUT = "{loss}/seed{seed}"


def run_path(runs_root: str | Path, loss: str, seed: int) -> Path:
    """Folder of one training run below ``runs_root``."""
    return Path(runs_root) / RUN_LAYOUT.format(loss=loss, seed=seed)


def train_overrides(
    config: StudyConfig,
    dataset: str,
    loss: str | None = None,
    budget: dict[str, Any] | None = None,
    tuned: bool = True,
) -> dict[str, Any]:
    """TrainSettings values for ``dataset`` (and ``loss``, and an ablation/multimodal ``budget``)
    under the active profile (no paths/seed)."""
    values = {**config.train, **config.datasets[dataset].train}
    if loss is not None:
        values.update(config.loss_train(dataset, loss, tuned))
    values.update(budget or {})
    if config.study.profile in config.profiles:
        values.update(config.profiles[config.study.profile].train)
    return values


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
    params = {**config.loss_params(dataset, loss, tuned), **(loss_params or {})}
    values = {**train_overrides(config, dataset, loss, budget, tuned), **(extra or {})}
    return TrainSettings(
        prepared_dir=Path(prepared_dir),
        out_dir=Path(out_dir),
        loss=loss,
        loss_params=params,
        seed=seed,
        label_level=label_level,
        **values,
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
