"""Class-disjoint validation split and the tiny-profile class subset."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dmlstudy.data import assign_validation_split, validate_index
from dmlstudy.data.splits import select_classes


def index(n_train=50, n_test=20, per_class=3) -> pd.DataFrame:
    labels = np.repeat(np.arange(n_train + n_test), per_class)
    return pd.DataFrame(
        {
            "path": [f"{i}.png" for i in range(len(labels))],
            "label": labels,
            "coarse_label": labels // 10,
            "split": np.where(labels < n_train, "train", "test"),
            "is_query": True,
            "is_gallery": True,
            "class_name": [f"c{x}" for x in labels],
        }
    )


def test_val_is_class_disjoint_and_carved_from_train():
    df = index()
    out = assign_validation_split(df, 0.2, seed=3)
    validate_index(out)
    val, train = (set(out.loc[out.split == s, "label"]) for s in ("val", "train"))
    assert len(val) == 10 and len(train) == 40 and not val & train
    assert val | train == set(df.loc[df.split == "train", "label"])
    assert out.loc[out.split == "test"].equals(df.loc[df.split == "test"])
    assert (df["split"] != "val").all()  # input not modified


def test_seeded_and_explicit():
    df = index()
    a = assign_validation_split(df, 0.2, seed=1)
    b = assign_validation_split(df, 0.2, seed=1)
    c = assign_validation_split(df, 0.2, seed=2)
    assert a.equals(b) and not a.equals(c)
    np.random.seed(0)  # global RNG state must not matter
    d = assign_validation_split(df, 0.2, seed=1)
    assert a.equals(d)


def test_zero_fraction_and_bad_fractions():
    df = index()
    assert (assign_validation_split(df, 0.0, seed=0)["split"] != "val").all()
    for bad in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match="val_fraction"):
            assign_validation_split(df, bad, seed=0)
    with pytest.raises(ValueError, match="gives 0 validation classes"):
        assign_validation_split(index(n_train=3), 0.1, seed=0)
    with pytest.raises(ValueError, match="already has a 'val' split"):
        assign_validation_split(assign_validation_split(df, 0.2, 0), 0.2, 0)


def test_select_classes_even_spacing_per_split():
    out = select_classes(index(), 5)
    assert sorted(out.loc[out.split == "train", "label"].unique()) == [0, 12, 24, 37, 49]
    assert sorted(out.loc[out.split == "test", "label"].unique()) == [50, 55, 60, 64, 69]
    assert len(out) == 30
    assert select_classes(index(n_train=3, n_test=2), 5)["label"].nunique() == 5
    with pytest.raises(ValueError, match="max_classes_per_split"):
        select_classes(index(), 0)


def test_coarse_split_holds_out_whole_coarse_classes():
    rng = np.random.default_rng(0)
    coarse = np.repeat(np.arange(10), 6)  # 10 coarse classes x 3 classes x 2 rows
    df = pd.DataFrame(
        {"label": np.repeat(np.arange(30), 2), "coarse_label": coarse, "split": "train"}
    )
    out = assign_validation_split(df, 0.3, seed=int(rng.integers(100)), by="coarse")
    val_coarse = set(out.loc[out["split"] == "val", "coarse_label"])
    assert len(val_coarse) == 3
    assert not val_coarse & set(out.loc[out["split"] == "train", "coarse_label"])
    with pytest.raises(ValueError, match="needs coarse labels"):
        assign_validation_split(df.assign(coarse_label=-1), 0.3, seed=0, by="coarse")
    with pytest.raises(ValueError, match="valid choices: class, coarse"):
        assign_validation_split(df, 0.3, seed=0, by="alphabet")
