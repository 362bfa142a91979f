"""The retrieval index contract shared by every dataset.

One row per image. Columns:

========== ======= =========================================================================
path       str     image path relative to the dataset folder = the member name in its archive
label      int     fine class id as in the dataset (zero-shot: no label spans two splits)
coarse     int     ``coarse_label``: coarse class id, -1 when the dataset has none
split      str     "train" | "val" | "test"
is_query   bool    row is a retrieval query
is_gallery bool    row is in the retrieval gallery (both True where there is no distinction)
class_name str     human-readable fine class name (one name per label)
========== ======= =========================================================================

Optional column ``coarse_name`` (str) names the coarse class.

>>> import pandas as pd
>>> df = pd.DataFrame({"path": ["a.png", "b.png"], "label": [3, 3], "coarse_label": [-1, -1],
...     "split": ["train", "train"], "is_query": [True, True], "is_gallery": [True, True],
...     "class_name": ["c3", "c3"]})
>>> validate_index(df) is df
True
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from .errors import DatasetLayoutError, IndexValidationError

INDEX_COLUMNS: tuple[str, ...] = (
    "path",
    "label",
    "coarse_label",
    "split",
    "is_query",
    "is_gallery",
    "class_name",
)
SPLITS: tuple[str, ...] = ("train", "val", "test")


def _fail(msg: str) -> None:
    raise IndexValidationError(f"invalid retrieval index: {msg}")


def validate_index(index: pd.DataFrame) -> pd.DataFrame:
    """Check ``index`` against the contract; return it unchanged or raise IndexValidationError."""
    if not isinstance(index, pd.DataFrame):
        _fail(f"expected a pandas DataFrame, got {type(index).__name__}")
    missing = [c for c in INDEX_COLUMNS if c not in index.columns]
    if missing:
        _fail(f"missing column(s) {missing}; required columns are {list(INDEX_COLUMNS)}")
    if len(index) == 0:
        _fail("the index has no rows")
    for col in ("label", "coarse_label"):
        if not pd.api.types.is_integer_dtype(index[col]):
            _fail(f"column '{col}' must hold integers, got dtype {index[col].dtype}")
    for col in ("is_query", "is_gallery"):
        if not pd.api.types.is_bool_dtype(index[col]):
            _fail(f"column '{col}' must be boolean, got dtype {index[col].dtype}")
    for col in ("path", "class_name", "split"):
        if pd.api.types.infer_dtype(index[col], skipna=False) != "string":
            _fail(f"column '{col}' must hold strings only")
    if (index["label"] < 0).any():
        _fail("labels must be non-negative")
    if (index["coarse_label"] < -1).any():
        _fail("coarse_label must be >= 0, or -1 for 'no coarse label'")
    bad = sorted(set(index["split"]) - set(SPLITS))
    if bad:
        _fail(f"unknown split value(s) {bad}; valid values are {list(SPLITS)}")
    dup = index["path"][index["path"].duplicated()]
    if len(dup):
        _fail(f"{len(dup)} duplicate path(s), e.g. {dup.iloc[0]!r}")
    if (~(index["is_query"] | index["is_gallery"])).any():
        _fail("every row must be a query, a gallery item, or both")
    nondistinct = index["split"] != "test"
    if not (index.loc[nondistinct, "is_query"] & index.loc[nondistinct, "is_gallery"]).all():
        _fail("train/val rows must have is_query and is_gallery both True")
    if (index.groupby("label")["split"].nunique() > 1).any():
        _fail("a label occurs in more than one split (splits must be class-disjoint)")
    if (index.groupby("label")["class_name"].nunique() > 1).any():
        _fail("a label has more than one class_name")
    test = index[index["split"] == "test"]
    orphan = set(test.loc[test["is_query"], "label"]) - set(test.loc[test["is_gallery"], "label"])
    if orphan:
        _fail(f"{len(orphan)} test query label(s) have no gallery image, e.g. {min(orphan)}")
    return index


def split_counts(index: pd.DataFrame) -> dict[str, tuple[int, int]]:
    """``{split: (n_classes, n_images)}`` for the splits present in ``index``.

    >>> import pandas as pd
    >>> split_counts(pd.DataFrame({"split": ["train", "train", "test"], "label": [0, 1, 2]}))
    {'test': (1, 1), 'train': (2, 2)}
    """
    g = index.groupby("split")["label"]
    return {s: (int(g.nunique()[s]), int(g.size()[s])) for s in sorted(g.groups)}


def check_counts(index: pd.DataFrame, expected: Mapping[str, tuple[int, int]], where: str) -> None:
    """Raise DatasetLayoutError unless ``index`` has the expected (classes, images) per split.

    ``where`` names the archive(s) the index came from, for the error message.
    """
    got = split_counts(index)
    if got != dict(expected):
        raise DatasetLayoutError(
            f"{where}: wrong layout or incomplete archive: expected (classes, images) per split "
            f"{dict(expected)}, found {got}. Replace the file(s) with the official archive(s)."
        )
