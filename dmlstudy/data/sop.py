"""Stanford Online Products (Song et al., CVPR 2016 "Lifted Structure"): 120,053 eBay images.

Archive ``Stanford_Online_Products.zip`` (cvgl.stanford.edu; md5 as used by public loaders, e.g.
pytorch-metric-learning 0.9's ``StanfordOnlineProducts``), read in place. ``Ebay_train.txt`` /
``Ebay_test.txt`` hold a header and rows ``image_id class_id super_class_id path`` with paths
relative to ``Stanford_Online_Products/`` (``bicycle_final/111085122871_0.JPG``).

Official split: 11,318 train products (59,551 images), 11,316 test products (60,502).
Coarse label: ``super_class_id`` as in the files (1..12: bicycle, cabinet, chair, …).
Class name: ``"<super class>/<class_id>"`` (products have no names).
"""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pandas as pd

from .errors import DatasetLayoutError
from .sources import DatasetSpec, Reader, RemoteFile, ZipReader

ROOT = "Stanford_Online_Products"
FILES = (
    RemoteFile(
        "Stanford_Online_Products.zip",
        "http://ftp.cs.stanford.edu/cs/cvgl/Stanford_Online_Products.zip",
        "7f73d41a2f44250d4779881525aea32e",
    ),
)
EXPECTED = {"train": (11318, 59551), "test": (11316, 60502)}
COLUMNS = ["image_id", "class_id", "super_class_id", "path"]


def open_reader(files: dict[str, Path], work_dir: Path) -> ZipReader:
    """The zip, read in place."""
    return ZipReader({ROOT: files["Stanford_Online_Products.zip"]})


def read_split(reader: Reader, split: str, archive: Path) -> pd.DataFrame:
    """Parse ``Ebay_<split>.txt`` (header + 4 whitespace-separated columns)."""
    name = f"{ROOT}/Ebay_{split}.txt"
    df = pd.read_csv(StringIO(reader.read(name).decode("utf-8")), sep=r"\s+")
    if list(df.columns) != COLUMNS:
        raise DatasetLayoutError(
            f"{archive}: {name} has columns {list(df.columns)}, expected {COLUMNS}"
        )
    df["split"] = split
    return df


def super_class_name(path: str) -> str:
    """Super-class folder without the ``_final`` suffix.

    >>> super_class_name("coffee_maker_final/1111_0.JPG")
    'coffee_maker'
    """
    return path.split("/", 1)[0].removesuffix("_final")


def build_index(files: dict[str, Path], reader: Reader) -> pd.DataFrame:
    """Index of Ebay_train.txt + Ebay_test.txt; every listed image must be in the zip."""
    archive = files["Stanford_Online_Products.zip"]
    df = pd.concat([read_split(reader, s, archive) for s in ("train", "test")], ignore_index=True)
    paths = (ROOT + "/" + df["path"]).tolist()
    missing = [p for p, ok in zip(paths, reader.exists(paths)) if not ok]
    if missing:
        raise DatasetLayoutError(
            f"{archive}: {len(missing)} listed image(s) missing, e.g. {missing[0]}"
        )
    coarse_name = df["path"].map(super_class_name)
    return pd.DataFrame(
        {
            "path": paths,
            "label": df["class_id"].astype("int64"),
            "coarse_label": df["super_class_id"].astype("int64"),
            "split": df["split"],
            "is_query": True,
            "is_gallery": True,
            "class_name": coarse_name + "/" + df["class_id"].astype(str),
            "coarse_name": coarse_name,
        }
    )


SPEC = DatasetSpec(
    name="sop",
    files=FILES,
    channels=3,
    expected=EXPECTED,
    open=open_reader,
    build=build_index,
    homepage="https://cvgl.stanford.edu/projects/lifted_struct/",
)
