"""CUB-200-2011 (Wah et al., Caltech tech. report CNS-TR-2011-001): 11,788 images of 200 birds.

Archive ``CUB_200_2011.tgz`` from CaltechDATA (md5 as used by public loaders, e.g. the
avalanche/torchvision-style ``Cub2011`` classes). Metadata inside the archive:
``CUB_200_2011/images.txt`` (``<image_id> <relative path>``), ``image_class_labels.txt``
(``<image_id> <class_id>``), ``classes.txt`` (``<class_id> NNN.Class_Name``); images under
``CUB_200_2011/images/``. The tar.gz is extracted once into the work dir.

Zero-shot DML split (Song et al., CVPR 2016 "Lifted Structure"): classes 1–100 train,
101–200 test (5,864 / 5,924 images). No coarse label (-1): the dataset defines none.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .errors import DatasetLayoutError
from .sources import DatasetSpec, DirReader, Reader, RemoteFile, extract_once

ROOT = "CUB_200_2011"
FILES = (
    RemoteFile(
        "CUB_200_2011.tgz",
        "https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz",
        "97eceeb196236b17998738112f37df78",
    ),
)
EXPECTED = {"train": (100, 5864), "test": (100, 5924)}
N_TRAIN_CLASSES = 100


def open_reader(files: dict[str, Path], work_dir: Path) -> DirReader:
    """Extract the tgz once into ``<work_dir>/extracted/cub200``."""
    return DirReader(extract_once(files["CUB_200_2011.tgz"], work_dir / "extracted" / "cub200"))


def _table(reader: Reader, name: str, ncols: int) -> list[list[str]]:
    text = reader.read(f"{ROOT}/{name}").decode("utf-8")
    rows = [line.split(maxsplit=ncols - 1) for line in text.splitlines() if line.strip()]
    if any(len(r) != ncols for r in rows):
        raise DatasetLayoutError(f"{ROOT}/{name}: expected {ncols} columns per line")
    return rows


def class_name(folder: str) -> str:
    """Readable class name from the folder name.

    >>> class_name("001.Black_footed_Albatross")
    'Black footed Albatross'
    """
    return folder.split(".", 1)[1].replace("_", " ")


def build_index(files: dict[str, Path], reader: Reader) -> pd.DataFrame:
    """Parse images.txt / image_class_labels.txt / classes.txt; check every image exists."""
    images = dict(_table(reader, "images.txt", 2))
    labels = {i: int(c) for i, c in _table(reader, "image_class_labels.txt", 2)}
    classes = {int(c): class_name(n) for c, n in _table(reader, "classes.txt", 2)}
    if images.keys() != labels.keys() or not set(labels.values()) <= classes.keys():
        raise DatasetLayoutError(
            f"{files['CUB_200_2011.tgz']}: images.txt, "
            "image_class_labels.txt and classes.txt disagree"
        )
    ids = sorted(images, key=int)
    df = pd.DataFrame(
        {"path": [f"{ROOT}/images/{images[i]}" for i in ids], "label": [labels[i] for i in ids]}
    )
    missing = [p for p, ok in zip(df["path"], reader.exists(list(df["path"]))) if not ok]
    if missing:
        raise DatasetLayoutError(
            f"{files['CUB_200_2011.tgz']}: {len(missing)} listed image(s) "
            f"missing, e.g. {missing[0]}"
        )
    df["label"] = df["label"].astype("int64")
    df["coarse_label"] = -1
    df["split"] = ["train" if c <= N_TRAIN_CLASSES else "test" for c in df["label"]]
    df["is_query"] = True
    df["is_gallery"] = True
    df["class_name"] = df["label"].map(classes)
    return df


SPEC = DatasetSpec(
    name="cub200",
    files=FILES,
    channels=3,
    expected=EXPECTED,
    open=open_reader,
    build=build_index,
    homepage="https://www.vision.caltech.edu/datasets/cub_200_2011/",
)
