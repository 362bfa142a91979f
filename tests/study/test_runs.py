"""TrainSettings assembly and ablation variants from params."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from dmlstudy.config import ParamsError, config_from_dict, split_loss_section
from dmlstudy.study.runs import ablation_variants, train_settings
from dmlstudy.training.rundir import run_path

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def test_precedence_common_dataset_profile_extra(raw):
    raw = copy.deepcopy(raw)
    raw["train"]["lr"] = 0.5  # common, overridden by the dataset preset
    raw["train"]["grad_clip"] = 3.0  # common only
    s = train_settings(
        config_from_dict(raw), "omniglot", "proxy_anchor", 7, prepared_dir="p", out_dir="o"
    )
    assert (s.lr, s.grad_clip, s.seed, s.backbone, s.epochs) == (
        0.001,
        3.0,
        7,
        "convnet4_050",
        100,
    )
    assert (s.schedule, s.patience, s.sampler) == ("plateau", 5, "random")  # loss family's sampler
    published, _, per_dataset = split_loss_section(raw["losses"]["proxy_anchor"])
    assert s.loss_params == {**published, **per_dataset.get("omniglot", {})}
    raw["study"]["profile"] = "tiny"
    s = train_settings(
        config_from_dict(raw),
        "omniglot",
        "rsw",
        0,
        prepared_dir="p",
        out_dir="o",
        loss_params={"k1": 1.0},
        extra={"epochs": 5},
    )
    assert (
        s.epochs,
        s.max_steps_per_epoch,
        s.loss_params["k1"],
        s.loss_params["phase2_epochs"],
    ) == (5, 2, 1.0, 0)


def test_budget_applies_before_the_profile_and_variant_changes_after(raw):
    """An ablation budget shortens full-profile runs, the tiny profile caps it (CI stays fast),
    and what a variant changes (its swept value) beats both."""
    raw = copy.deepcopy(raw)
    budget = {"epochs": 2, "max_steps_per_epoch": 50, "m_per_class": 8}
    s = train_settings(
        config_from_dict(raw),
        "omniglot",
        "triplet",
        0,
        prepared_dir="p",
        out_dir="o",
        budget=budget,
    )
    assert (s.epochs, s.max_steps_per_epoch, s.m_per_class) == (2, 50, 8)
    raw["study"]["profile"] = "tiny"
    s = train_settings(
        config_from_dict(raw),
        "omniglot",
        "triplet",
        0,
        prepared_dir="p",
        out_dir="o",
        budget=budget,
        extra={"m_per_class": 2},
    )
    assert (s.epochs, s.max_steps_per_epoch, s.m_per_class) == (2, 2, 2)


def test_ablation_variants_cover_named_variants_and_sweeps(raw):
    config = config_from_dict(raw)
    daal = ablation_variants(config, "daal_parts")
    assert daal[0].label == "full" and any(v.loss_params.get("prototype") == "point" for v in daal)
    emb = ablation_variants(config, "embedding_size")
    assert [v.train["embedding_dim"] for v in emb] == [8, 16, 32]
    assert all(v.budget == raw["ablations"]["embedding_size"].get("train", {}) for v in emb)
    assert [v.value for v in emb] == [8, 16, 32]
    gamma = ablation_variants(config, "direction_gamma")
    assert [v.loss_params["gamma"] for v in gamma] == [0.0, 0.1, 0.25, 0.5]
    rsw = ablation_variants(config, "rsw_warp")  # shared loss_params reach every arm
    assert [v.label for v in rsw] == config.ablations["rsw_warp"].arm_labels()


def test_bad_sweep_key_is_named(raw):
    raw = copy.deepcopy(raw)
    raw["ablations"]["direction_gamma"]["sweep"] = {"loss_params.gama": [0.1]}
    raw["ablations"]["direction_gamma"]["reference"] = "gama=0.1"
    with pytest.raises(
        ParamsError, match=r"ablations.direction_gamma.sweep.loss_params.gama.*did you mean 'gamma'"
    ):
        ablation_variants(config_from_dict(raw), "direction_gamma")


def test_run_path_layout():
    assert run_path("r", "npair", 3) == Path("r/npair/seed3")
