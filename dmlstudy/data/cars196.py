"""Cars196 / Stanford Cars (Krause et al., 3dRR @ ICCV 2013): 16,185 images of 196 car models.

Files from ai.stanford.edu/~jkrause/car196/ (md5s as used by public DML loaders, e.g.
``Cars196Metric``): ``car_ims.tgz`` (``car_ims/000001.jpg`` …) and ``cars_annos.mat`` with
``annotations`` (struct array: relative_im_path, bbox_x1, bbox_y1, bbox_x2, bbox_y2, class,
test) and ``class_names`` (1×196 cell). The tgz is extracted once into the work dir.

Zero-shot DML split (Song et al., CVPR 2016): classes 1–98 train, 99–196 test (8,054 / 8,131).
Coarse label: the make = first word of the class name ("BMW M3 Coupe 2012" → "BMW"; multi-word
makes keep their first word, e.g. "Aston"), numbered in sorted order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DatasetLayoutError
from .sources import DatasetSpec, DirReader, Reader, RemoteFile, extract_once

_URL = "http://ai.stanford.edu/~jkrause/car196/"
FILES = (
    RemoteFile("car_ims.tgz", _URL + "car_ims.tgz", "d5c8f0aa497503f355e17dc7886c3f14"),
    RemoteFile("cars_annos.mat", _URL + "cars_annos.mat", "b407c6086d669747186bd1d764ff9dbc"),
)
EXPECTED = {"train": (98, 8054), "test": (98, 8131)}
N_TRAIN_CLASSES = 98


def open_reader(files: dict[str, Path], work_dir: Path) -> DirReader:
    """Extract car_ims.tgz once into ``<work_dir>/extracted/cars196``."""
    return DirReader(extract_once(files["car_ims.tgz"], work_dir / "extracted" / "cars196"))


def make_of(name: str) -> str:
    """Coarse class: first word of the class name.

    >>> make_of("Acura TL Sedan 2012")
    'Acura'
    """
    return name.split()[0]


def read_annotations(mat_path: Path) -> tuple[list[str], np.ndarray, list[str]]:
    """(relative image paths, 1-based classes, class names) from cars_annos.mat."""
    import scipy.io  # lazy: ~0.5 s of import for every stage, needed by Cars196 only

    try:
        mat = scipy.io.loadmat(mat_path, squeeze_me=True)
        ann, names = mat["annotations"], mat["class_names"]
        paths = [str(p) for p in np.atleast_1d(ann["relative_im_path"])]
        classes = np.atleast_1d(ann["class"]).astype("int64")
    except (KeyError, ValueError, TypeError, OSError, scipy.io.matlab.MatReadError) as err:
        raise DatasetLayoutError(
            f"{mat_path}: not the official cars_annos.mat layout "
            f"(annotations.relative_im_path/class, class_names): {err}"
        ) from err
    return paths, classes, [str(n) for n in np.atleast_1d(names)]


def build_index(files: dict[str, Path], reader: Reader) -> pd.DataFrame:
    """Parse cars_annos.mat; check every listed image exists in the extracted car_ims.tgz."""
    paths, classes, names = read_annotations(files["cars_annos.mat"])
    if classes.min() < 1 or classes.max() > len(names):
        raise DatasetLayoutError(f"{files['cars_annos.mat']}: class ids outside 1..{len(names)}")
    missing = [p for p, ok in zip(paths, reader.exists(paths)) if not ok]
    if missing:
        raise DatasetLayoutError(
            f"{files['car_ims.tgz']}: {len(missing)} image(s) listed in "
            f"cars_annos.mat missing, e.g. {missing[0]}"
        )
    makes = sorted({make_of(n) for n in names})
    df = pd.DataFrame({"path": paths, "label": classes})
    df["class_name"] = [names[c - 1] for c in classes]
    df["coarse_name"] = df["class_name"].map(make_of)
    df["coarse_label"] = df["coarse_name"].map({m: i for i, m in enumerate(makes)}).astype("int64")
    df["split"] = np.where(classes <= N_TRAIN_CLASSES, "train", "test")
    df["is_query"] = True
    df["is_gallery"] = True
    return df


SPEC = DatasetSpec(
    name="cars196",
    files=FILES,
    channels=3,
    expected=EXPECTED,
    open=open_reader,
    build=build_index,
    homepage="https://ai.stanford.edu/~jkrause/cars/car_dataset.html",
)
