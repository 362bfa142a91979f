"""Class-disjoint validation split and the class subset of the tiny profile."""

from __future__ import annotations

import numpy as np
import pandas as pd


def assign_validation_split(
    index: pd.DataFrame, val_fraction: float, seed: int, by: str = "class"
) -> pd.DataFrame:
    """Copy of ``index`` where a ``val_fraction`` of the train classes become "val".

    ``by="class"``: ``round(val_fraction × n_train_classes)`` classes drawn with
    ``np.random.default_rng(seed)``. ``by="coarse"``: ``round(val_fraction × n_train_coarse)``
    whole coarse classes (Omniglot alphabets) with all their classes, so that validation holds out
    unseen coarse classes as the test split does, and serves coarse-label training too. Either way
    the split is class-disjoint (zero-shot model selection); val rows are query and gallery.

    >>> import pandas as pd
    >>> df = pd.DataFrame({"label": [0, 0, 1, 1, 2, 3], "coarse_label": [0, 0, 0, 0, 1, 2],
    ...                    "split": ["train"] * 4 + ["test"] * 2})
    >>> out = assign_validation_split(df, 0.5, seed=0)
    >>> sorted(out["split"].value_counts().items())
    [('test', 2), ('train', 2), ('val', 2)]
    >>> df["coarse_label"] = [0, 0, 1, 1, 2, 3]
    >>> out = assign_validation_split(df, 0.5, 0, by="coarse")
    >>> sorted(out["split"].value_counts().items())
    [('test', 2), ('train', 2), ('val', 2)]
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if by not in ("class", "coarse"):
        raise ValueError(f"unknown validation split {by!r}; valid choices: class, coarse")
    if (index["split"] == "val").any():
        raise ValueError("index already has a 'val' split")
    train = index["split"] == "train"
    unit, what = ("label", "classes") if by == "class" else ("coarse_label", "coarse classes")
    if by == "coarse" and (index.loc[train, "coarse_label"] < 0).any():
        raise ValueError("val_by: coarse needs coarse labels, but this dataset has none")
    units = np.unique(index.loc[train, unit].to_numpy())
    n_val = round(float(val_fraction * len(units)))
    if val_fraction > 0 and not 1 <= n_val < len(units):
        raise ValueError(
            f"val_fraction={val_fraction} of {len(units)} train {what} "
            f"gives {n_val} validation {what}; need 1..{len(units) - 1}"
        )
    rng = np.random.default_rng(seed)
    val_units = rng.choice(units, size=n_val, replace=False)
    out = index.copy()
    out.loc[out[unit].isin(val_units) & train, "split"] = "val"
    return out


def widen_coarse_validation(index: pd.DataFrame, val_fraction: float) -> pd.DataFrame:
    """Copy of a split ``index`` whose "val" rows are ``round(val_fraction × n)`` WHOLE coarse
    classes of its ``n`` non-test coarse classes, none of them trained on: the coarse classes the
    prepared validation already holds out whole (``val_by: coarse``, Omniglot alphabets), plus
    coarse classes evenly spaced in label order, with all their train and val rows. Prepared
    validation rows of a coarse class that stays in training (``val_by: class``: SOP, In-Shop and
    Cars196 hold out products / models of every coarse class) go back to "train". Deterministic
    and seed-independent, so every run selects on the same ones. "test" rows are untouched; used
    per run (the multi-modal experiment's ``val_coarse_fraction``), never written back to the
    prepared data.

    >>> df = pd.DataFrame({"label": range(8), "coarse_label": [0, 0, 1, 2, 3, 4, 5, 6],
    ...                    "split": ["train"] * 5 + ["val"] + ["test"] * 2})
    >>> out = widen_coarse_validation(df, 0.6)
    >>> {s: sorted(set(g.tolist())) for s, g in out.groupby("split")["coarse_label"]}
    {'test': [5, 6], 'train': [1, 2], 'val': [0, 3, 4]}
    >>> df["split"] = ["train", "val", "train", "val", "train", "train", "test", "test"]
    >>> out = widen_coarse_validation(df, 0.4)  # coarse 0 in both splits, 2 held out whole
    >>> {s: sorted(set(g.tolist())) for s, g in out.groupby("split")["coarse_label"]}
    {'test': [5, 6], 'train': [1, 3, 4], 'val': [0, 2]}
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_coarse_fraction must be in (0, 1), got {val_fraction}")
    coarse = index["coarse_label"].to_numpy()
    train = (index["split"] == "train").to_numpy()
    val = (index["split"] == "val").to_numpy()
    if (coarse[train | val] < 0).any():
        raise ValueError("val_coarse_fraction needs coarse labels, but this dataset has none")
    held = np.setdiff1d(coarse[val], coarse[train])  # held out whole by the prepared split
    free = np.setdiff1d(coarse[train | val], held)
    n_all = len(held) + len(free)
    n_val = round(float(val_fraction * n_all))
    if not max(1, len(held)) <= n_val <= n_all - 2:
        raise ValueError(
            f"val_coarse_fraction={val_fraction} of {n_all} non-test coarse classes gives {n_val} "
            f"validation coarse classes; need {max(1, len(held))} (at least one, and the "
            f"prepared ones) to {n_all - 2} (two left to train on)"
        )
    extra = n_val - len(held)
    pos = np.linspace(0, len(free) - 1, extra).round().astype(int) if extra else []
    in_val = np.isin(coarse, np.union1d(held, free[pos]))
    out = index.copy()
    out.loc[(train | val) & in_val, "split"] = "val"
    out.loc[(train | val) & ~in_val, "split"] = "train"
    return out


def select_classes(index: pd.DataFrame, max_classes_per_split: int) -> pd.DataFrame:
    """Keep at most ``max_classes_per_split`` classes per split, evenly spaced in label order.

    Deterministic and seed-independent; spreading the picks over the sorted labels spans the
    coarse classes (e.g. Omniglot alphabets) instead of taking the first alphabet only.

    >>> import pandas as pd
    >>> df = pd.DataFrame({"label": range(10), "split": ["train"] * 6 + ["test"] * 4})
    >>> select_classes(df, 2)["label"].tolist()
    [0, 5, 6, 9]
    """
    if max_classes_per_split < 1:
        raise ValueError(f"max_classes_per_split must be >= 1, got {max_classes_per_split}")
    keep = []
    for _, part in index.groupby("split", sort=False):
        labels = np.unique(part["label"].to_numpy())
        if len(labels) > max_classes_per_split:
            pos = np.linspace(0, len(labels) - 1, max_classes_per_split).round().astype(int)
            labels = labels[pos]
        keep.append(labels)
    return index[index["label"].isin(np.concatenate(keep))].reset_index(drop=True)
