"""Ablations without confounds (#15 item 5): every arm changes only what it names (both RSW
phases), references are the tuned runs they reduce to, an arm whose loss changes shape gets its
own tuning; the multi-modal runs select on more held-out alphabets and say when their ranking
depends on stopping time."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from dmlstudy.config import ParamsError, config_from_dict, split_loss_section
from dmlstudy.data.splits import widen_coarse_validation
from dmlstudy.reports.experiment_report import stopping_time_note
from dmlstudy.study import ablation as A
from dmlstudy.study.runs import ablation_variants, study_runs, train_settings
from tests.support.params import paper_design

REPO = Path(__file__).resolve().parents[2]
PATHS = {"prepared_dir": "p", "out_dir": "o"}
NAMING = {"out_dir", "loss", "loss_params"}


@pytest.fixture(scope="module")
def raw() -> dict:
    params = paper_design(yaml.safe_load((REPO / "params.yaml").read_text()))
    params.pop("tuning", None)  # the campaign's section: not what these tests read
    return params


def arm_settings(config, ablation, label, dataset="omniglot"):
    v = next(v for v in ablation_variants(config, ablation) if v.label == label)
    return v.settings(config, dataset, 0, **PATHS)


def test_rsw_warp_arms_change_both_phases(raw):
    config = config_from_dict(raw)
    named = {}
    for v in ablation_variants(config, "rsw_warp"):
        p = arm_settings(config, "rsw_warp", v.label).loss_params
        for k in ("k1", "k2"):
            if k in v.loss_params or f"phase2_{k}" in v.loss_params:
                assert p[k] == p[f"phase2_{k}"] == 1.0, (v.label, k)
                named.setdefault(v.label, []).append(k)
    assert named == {"no_warp": ["k1", "k2"], "inner_only": ["k2"], "outer_only": ["k1"]}
    no_warp = arm_settings(config, "rsw_warp", "no_warp").loss_params
    assert no_warp["margin"] == 0.0  # one margin for both phases
    published = arm_settings(config, "rsw_warp", "published").loss_params
    assert published["phase2_k1"] != 1.0 and published["phase2_k2"] != 1.0  # the warp it removes


def test_an_arm_changing_one_phase_only_is_refused(raw):
    raw = copy.deepcopy(raw)
    raw["ablations"]["rsw_warp"]["variants"]["no_warp"] = {"loss_params": {"k1": 1.0, "k2": 1.0}}
    with pytest.raises(ParamsError, match=r"variants\.no_warp\.loss_params\.k1 = 1.0 .*phase2_k1"):
        ablation_variants(config_from_dict(raw), "rsw_warp")
    raw["ablations"]["rsw_warp"]["variants"]["no_warp"] = {"loss_params": {"phase2_k2": 1.0}}
    with pytest.raises(ParamsError, match="changes phase 2 only: set k2"):
        study_runs(config_from_dict(raw))


@pytest.mark.parametrize("loss", ["direction", "language"])
def test_regularizer_base_is_the_tuned_base_loss(raw, loss):
    """base_params of direction / language on a dataset = the tuned values of their base loss
    there (copied in params.yaml, so that they cannot drift apart)."""
    section = raw["losses"][loss]
    _, _, per_dataset = split_loss_section(section)
    _, _, base_tuned = split_loss_section(raw["losses"][section["base"]])
    for dataset in set(per_dataset) | set(base_tuned):
        want = {k: v for k, v in base_tuned.get(dataset, {}).items() if k != "train"}
        assert per_dataset.get(dataset, {}).get("base_params") == (want or None), dataset


@pytest.mark.parametrize(
    ("ablation", "reference", "base", "term", "other_base"),
    [("direction_gamma", "gamma=0.0", "triplet", "gamma", {"margin": 0.3}),
     ("language_omega", "weight=0.0", "multi_similarity", "weight", {"alpha": 9.0})],
)  # fmt: skip
def test_reference_arm_is_the_main_run_of_its_base(
    raw, ablation, reference, base, term, other_base
):
    """(triplet's tuned values are its published ones: direction then has no base_params.)"""
    config = config_from_dict(raw)
    arm = arm_settings(config, ablation, reference)
    main = train_settings(config, "omniglot", base, 0, **PATHS)
    assert arm.model_dump(exclude=NAMING) == main.model_dump(exclude=NAMING)
    assert arm.loss_params[term] == 0.0 and arm.loss_params["base"] == base
    assert (arm.loss_params["base_params"] or {}).items() <= main.loss_params.items()
    assert A.reference_is_main_run(config, ablation, "omniglot")
    assert "is the main" in A.tuning_notes(config, ablation, "omniglot")[-1]
    # every arm trains as the reference (only the swept term differs)
    for v in ablation_variants(config, ablation):
        assert arm_settings(config, ablation, v.label).model_dump(exclude=NAMING) == (
            arm.model_dump(exclude=NAMING)
        )
    untuned = copy.deepcopy(raw)
    del untuned["ablations"][ablation]["train_from"]  # the confound: the regularizer's own lr
    loss = config.ablations[ablation].loss
    own_lr = raw["losses"][loss]["per_dataset"]["omniglot"]["train"]["lr"]
    assert own_lr != main.lr
    assert arm_settings(config_from_dict(untuned), ablation, reference).lr == own_lr
    untuned["ablations"][ablation]["train_from"] = base
    untuned["losses"][loss]["per_dataset"]["omniglot"]["base_params"] = other_base  # not the tuned
    assert not A.reference_is_main_run(config_from_dict(untuned), ablation, "omniglot")


def test_point_proxy_arm_gets_its_own_tuning(raw):
    config = config_from_dict(raw)
    daal_tuned = raw["losses"]["daal"]["per_dataset"]["omniglot"]
    (target,) = A.tuning_targets(config)
    assert target.name == "daal_parts/point_proxy" and target.loss == "daal"
    assert target.loss_params == {"prototype": "point", "elastic": False, "density": False}
    assert target.writes_to == "ablations.daal_parts.variants.point_proxy.per_dataset"
    tuning = config_from_dict(yaml.safe_load((REPO / "params.yaml").read_text())).tuning
    assert target.space == tuning.loss_space("daal")  # DAAL's own search space: equal effort
    # not tuned yet (as before its campaign): the segment-tuned values, and the page says so
    untuned = copy.deepcopy(raw)
    untuned["ablations"]["daal_parts"]["variants"]["point_proxy"]["per_dataset"] = {}
    config = config_from_dict(untuned)
    s = arm_settings(config, "daal_parts", "point_proxy")
    assert s.loss_params["scale"] == daal_tuned["scale"]
    (note,) = A.tuning_notes(config, "daal_parts", "omniglot")
    assert "has not tuned it on omniglot yet" in note and note.startswith("Arm point_proxy")
    # tuned: its own values, nothing of the segment-tuned ones
    raw = copy.deepcopy(raw)
    own = {"scale": 20.0, "train": {"lr": 0.0005}}
    raw["ablations"]["daal_parts"]["variants"]["point_proxy"]["per_dataset"] = {"omniglot": own}
    config = config_from_dict(raw)
    s = arm_settings(config, "daal_parts", "point_proxy")
    assert (s.loss_params["scale"], s.lr) == (20.0, 0.0005)
    assert s.loss_params["margin"] == raw["losses"]["daal"]["margin"]  # published, not tuned
    assert s.layer_norm is False  # daal's tuned layer_norm is for segments
    assert arm_settings(config, "daal_parts", "full").loss_params["scale"] == daal_tuned["scale"]
    assert "its own tuned values" in A.tuning_notes(config, "daal_parts", "omniglot")[0]
    (run,) = [r for r in study_runs(config) if r.label.startswith("ablation daal_parts (point")]
    assert run.own == ("ablations.daal_parts.variants.point_proxy.per_dataset.omniglot", own)


def test_own_values_need_an_own_space(raw):
    raw = copy.deepcopy(raw)
    arm = raw["ablations"]["daal_parts"]["variants"]["point_proxy"]
    del arm["space"]
    arm["per_dataset"] = {"omniglot": {"scale": 3.0}}
    with pytest.raises(ValueError, match=r"point_proxy\.per_dataset: .*declare .*\.space"):
        ablation_variants(config_from_dict(raw), "daal_parts")


def test_multimodal_runs_select_on_more_held_out_alphabets(raw):
    config = config_from_dict(raw)
    runs = study_runs(config)
    multimodal = [r for r in runs if r.label.startswith("multimodal")]
    assert multimodal and all(r.budget["val_coarse_fraction"] == 0.3 for r in multimodal)
    main = train_settings(config, "omniglot", "triplet", 0, **PATHS)
    assert main.val_coarse_fraction is None  # the main comparison keeps the prepared split


def omniglot_like_index(n_train=26, n_val=4, n_test=20, per=3):
    rows, label = [], 0
    for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
        for _ in range(n):
            coarse = len({r["coarse_label"] for r in rows})
            rows += [
                {"label": label + i, "coarse_label": coarse, "split": split} for i in range(per)
            ]
            label += per
    return pd.DataFrame(rows)


def test_widen_coarse_validation_keeps_test_and_prepared_validation():
    index = omniglot_like_index()
    out = widen_coarse_validation(index, 0.3)
    coarse = {s: set(out.loc[out["split"] == s, "coarse_label"]) for s in ("train", "val", "test")}
    assert len(coarse["val"]) == 9 and len(coarse["train"]) == 21
    assert set(index.loc[index["split"] == "val", "coarse_label"]) <= coarse["val"]
    assert not coarse["train"] & coarse["val"]
    pd.testing.assert_frame_equal(out[out["split"] == "test"], index[index["split"] == "test"])
    assert (widen_coarse_validation(index, 0.3) == out).all().all()  # the same for every run
    with pytest.raises(ValueError, match=r"need 4 .* to 28"):
        widen_coarse_validation(index, 0.05)


def test_widen_coarse_validation_of_a_class_split_holds_out_whole_coarse_classes():
    """SOP / In-Shop / Cars196 are prepared with val_by: class: the validation products span every
    super class. The coarse runs' validation must still be whole super classes never trained on
    (found by the photo rehearsal: it refused SOP's 12 super classes, all 12 "in validation")."""
    products = [(p, p % 12) for p in range(240)]  # 20 products in each of 12 super classes
    val = set(range(24))  # val_fraction 0.1 of the products, two of every super class
    rows = [
        {"label": p, "coarse_label": c, "split": "val" if p in val else "train"}
        for p, c in products
        for _ in range(3)
    ] + [{"label": 1000 + i, "coarse_label": i % 12, "split": "test"} for i in range(24)]
    index = pd.DataFrame(rows)
    assert set(index.loc[index["split"] == "val", "coarse_label"]) == set(range(12))
    out = widen_coarse_validation(index, 0.3)
    coarse = {s: set(out.loc[out["split"] == s, "coarse_label"]) for s in ("train", "val")}
    assert len(coarse["val"]) == 4 and len(coarse["train"]) == 8
    assert not coarse["train"] & coarse["val"]
    in_val = out["coarse_label"].isin(coarse["val"]) & (index["split"] != "test")
    assert (out.loc[in_val, "split"] == "val").all()  # whole coarse classes, their train rows too
    pd.testing.assert_frame_equal(out[out["split"] == "test"], index[index["split"] == "test"])


def test_prepared_dataset_widens_only_in_memory(tmp_path):
    from dmlstudy.data.prepared import PreparedDataset
    from dmlstudy.training.synthetic import write_synthetic_prepared

    d = write_synthetic_prepared(
        tmp_path, classes={"train": 8, "val": 2, "test": 2}, per_class=2, image_size=8, channels=1
    )
    ds = PreparedDataset.load(d)
    wide = ds.with_coarse_validation(0.4)
    assert len(wide.split("val")[0]) > len(ds.split("val")[0])
    assert np.array_equal(wide.split("test")[0], ds.split("test")[0])
    assert np.array_equal(PreparedDataset.load(d).split("val")[0], ds.split("val")[0])


def test_stopping_time_note_flags_spread_epochs_and_clears_even_ones():
    cmp = pd.DataFrame({"metric": ["map@r"], "reference": ["a"]})
    spread = pd.DataFrame({"loss": ["a", "b", "c"], "seed": 0, "best_epoch": [0, 5, 3],
                           "fine_map@r": [0.3, 0.1, 0.2]})  # fmt: skip
    assert "depends on stopping time" in stopping_time_note(spread, cmp)
    even = spread.assign(best_epoch=[7, 8, 9], **{"fine_map@r": [0.2, 0.1, 0.3]})
    note = stopping_time_note(even, cmp)
    assert "not explained by stopping time" in note and "from 8 (a) to 10 (c)" in note
    even_falls = even.assign(**{"fine_map@r": [0.3, 0.2, 0.1]})
    assert "falls with the selected epoch" in stopping_time_note(even_falls, cmp)
