"""The retrieval index contract: validate_index and check_counts."""

from __future__ import annotations

import pandas as pd
import pytest

from dmlstudy.data import IndexValidationError, validate_index
from dmlstudy.data.errors import DatasetLayoutError
from dmlstudy.data.index import check_counts, split_counts


def good() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "path": ["a/1.jpg", "a/2.jpg", "b/1.jpg", "b/2.jpg", "c/1.jpg"],
            "label": [0, 0, 1, 1, 2],
            "coarse_label": [-1, -1, 0, 0, 0],
            "split": ["train", "train", "test", "test", "val"],
            "is_query": [True, True, True, False, True],
            "is_gallery": [True, True, False, True, True],
            "class_name": ["a", "a", "b", "b", "c"],
        }
    )


def test_good_index_passes():
    df = good()
    assert validate_index(df) is df


BREAKERS = {
    "missing column": (lambda d: d.drop(columns="class_name"), "missing column"),
    "float labels": (lambda d: d.assign(label=d["label"] + 0.5), "'label' must hold integers"),
    "str coarse": (lambda d: d.assign(coarse_label="x"), "'coarse_label' must hold integers"),
    "int flags": (lambda d: d.assign(is_query=1), "'is_query' must be boolean"),
    "bad split": (
        lambda d: d.assign(split=["train", "train", "test", "test", "valid"]),
        "unknown split value(s) ['valid']",
    ),
    "duplicate path": (
        lambda d: d.assign(path=["x"] * 2 + ["b/1.jpg", "b/2.jpg", "c/1.jpg"]),
        "duplicate path",
    ),
    "negative label": (lambda d: d.assign(label=[0, 0, 1, 1, -2]), "non-negative"),
    "coarse below -1": (lambda d: d.assign(coarse_label=[-3, -1, 0, 0, 0]), "coarse_label"),
    "neither flag": (
        lambda d: d.assign(is_gallery=[True, True, False, False, True]),
        "query, a gallery item, or both",
    ),
    "train not both": (
        lambda d: d.assign(is_gallery=[False, True, False, True, True]),
        "train/val rows",
    ),
    "label in two splits": (
        lambda d: d.assign(label=[0, 0, 1, 1, 1], class_name=list("aabbb")),
        "more than one split",
    ),
    "two names": (
        lambda d: d.assign(class_name=["a", "z", "b", "b", "c"]),
        "more than one class_name",
    ),
    "query without gallery": (
        lambda d: d.assign(label=[0, 0, 1, 3, 2], class_name=["a", "a", "b", "d", "c"]),
        "no gallery image",
    ),
    "empty": (lambda d: d.iloc[:0], "no rows"),
    "non-str path": (lambda d: d.assign(path=[1, 2, 3, 4, 5]), "'path' must hold strings"),
}


@pytest.mark.parametrize("case", sorted(BREAKERS))
def test_each_breach_is_named(case):
    mutate, message = BREAKERS[case]
    with pytest.raises(IndexValidationError, match="invalid retrieval index") as err:
        validate_index(mutate(good()))
    assert message in str(err.value)


def test_not_a_dataframe():
    with pytest.raises(IndexValidationError, match="DataFrame"):
        validate_index({"path": []})


def test_split_counts_and_check_counts():
    df = good()
    assert split_counts(df) == {"test": (1, 2), "train": (1, 2), "val": (1, 1)}
    check_counts(df, {"train": (1, 2), "test": (1, 2), "val": (1, 1)}, "x.zip")
    with pytest.raises(DatasetLayoutError, match=r"x\.zip: wrong layout.*expected"):
        check_counts(df, {"train": (1, 3), "test": (1, 2), "val": (1, 1)}, "x.zip")
