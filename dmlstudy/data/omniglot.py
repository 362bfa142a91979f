"""Omniglot (Lake, Salakhutdinov & Tenenbaum, Science 2015): 1,623 handwritten characters.

Official archives (github.com/brendenlake/omniglot, folder ``python/``), md5s as in torchvision's
``Omniglot`` dataset: ``images_background.zip`` (30 alphabets, 964 characters × 20 drawings) is the
train split, ``images_evaluation.zip`` (20 alphabets, 659 characters) the test split — disjoint
characters and alphabets. Layout: ``images_background/<Alphabet>/characterNN/<id>_<drawer>.png``.

Fine label: character, numbered 0..963 (train) then 964..1622 (test) in sorted path order;
class name ``"<Alphabet>/characterNN"``. Coarse label: alphabet, 0..29 then 30..49, sorted.
Zips are read in place (no extraction). 105×105 binary PNGs, ink black on white.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .errors import DatasetLayoutError
from .sources import DatasetSpec, Reader, RemoteFile, ZipReader

_URL = "https://raw.githubusercontent.com/brendenlake/omniglot/master/python/"
FILES = (
    RemoteFile(
        "images_background.zip", _URL + "images_background.zip", "68d2efa1b9178cc56df9314c21c6e718"
    ),
    RemoteFile(
        "images_evaluation.zip", _URL + "images_evaluation.zip", "6b91aef0f799c5bb55b94e3f2daec811"
    ),
)
SPLIT_OF = {"images_background": "train", "images_evaluation": "test"}
EXPECTED = {"train": (964, 19280), "test": (659, 13180)}
EXPECTED_ALPHABETS = {"train": 30, "test": 20}
DRAWINGS = 20


def open_reader(files: dict[str, Path], work_dir: Path) -> ZipReader:
    """Both zips, routed by their top folder ``images_background`` / ``images_evaluation``."""
    return ZipReader({top: files[top + ".zip"] for top in SPLIT_OF})


def parse_paths(paths: list[str], split: str) -> pd.DataFrame:
    """Rows (path, alphabet, class_name, split) for the PNG members of one official zip.

    >>> parse_paths(["images_background/Latin/character01/0001_01.png", "images_background/"],
    ...             "train").to_dict("records")  # doctest: +NORMALIZE_WHITESPACE
    [{'path': 'images_background/Latin/character01/0001_01.png', 'alphabet': 'Latin',
      'class_name': 'Latin/character01', 'split': 'train'}]
    """
    rows = []
    for p in sorted(paths):
        if not p.endswith(".png"):
            continue  # directory entries of the official zips
        parts = p.split("/")
        if len(parts) != 4:
            raise DatasetLayoutError(
                f"unexpected Omniglot member {p!r}: expected "
                "<split>/<Alphabet>/characterNN/<file>.png"
            )
        rows.append(
            {
                "path": p,
                "alphabet": parts[1],
                "class_name": f"{parts[1]}/{parts[2]}",
                "split": split,
            }
        )
    return pd.DataFrame(rows, columns=["path", "alphabet", "class_name", "split"])


def build_index(files: dict[str, Path], reader: Reader) -> pd.DataFrame:
    """Index of both zips (train classes first); alphabet counts are checked when complete."""
    assert isinstance(reader, ZipReader)
    parts = []
    for top, split in SPLIT_OF.items():
        df = parse_paths(reader.names(top), split)
        if df.empty:
            raise DatasetLayoutError(f"{files[top + '.zip']} holds no {top}/…/*.png images")
        parts.append(df)
    df = pd.concat(parts, ignore_index=True)
    alphabets = {s: df.loc[df.split == s, "alphabet"].nunique() for s in EXPECTED_ALPHABETS}
    n_images = {s: int((df.split == s).sum()) for s in EXPECTED}
    drawings = df.groupby("class_name").size()
    if n_images == {s: n for s, (_, n) in EXPECTED.items()} and (
        alphabets != EXPECTED_ALPHABETS or (drawings != DRAWINGS).any()
    ):
        raise DatasetLayoutError(
            f"Omniglot zips {sorted(map(str, files.values()))}: expected alphabets per split "
            f"{EXPECTED_ALPHABETS} and {DRAWINGS} drawings per character, found {alphabets} and "
            f"{sorted(set(drawings))} drawings"
        )
    # sorted unique names across both splits: train characters/alphabets come first because
    # each split's block is sorted and labels are assigned in order of first appearance.
    df["label"] = pd.factorize(df["class_name"])[0].astype("int64")
    df["coarse_label"] = pd.factorize(df["split"] + "|" + df["alphabet"])[0].astype("int64")
    df["coarse_name"] = df["alphabet"]
    df["is_query"] = True
    df["is_gallery"] = True
    return df.drop(columns="alphabet")


SPEC = DatasetSpec(
    name="omniglot",
    files=FILES,
    channels=1,
    expected=EXPECTED,
    open=open_reader,
    build=build_index,
    homepage="https://github.com/brendenlake/omniglot",
    notes="local copies are checked by layout and counts (the offline repack has other md5s)",
)
