"""In-Shop Clothes Retrieval (DeepFashion; Liu et al., CVPR 2016): 52,712 images of 7,982 items.

Files of the benchmark's Google-Drive folder (manual download: no direct URL and no published
checksum, so local copies are verified by layout and counts only): ``img.zip`` (members
``img/<WOMEN|MEN>/<Category>/id_XXXXXXXX/NN_k_view.jpg``, 256×256) and
``Eval/list_eval_partition.txt`` placed next to it as ``list_eval_partition.txt``: a count line,
the header ``image_name item_id evaluation_status``, then one row per image.

Official protocol: 3,997 train items (25,882 images); 3,985 test items split into 14,218 query
and 12,612 gallery images. Fine label: the item number (``id_00000002`` → 2). Coarse label: the
clothing category from the path (``WOMEN/Dresses``), numbered in sorted order.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .errors import DatasetLayoutError
from .sources import DatasetSpec, Reader, RemoteFile, ZipReader

_DRIVE = "https://drive.google.com/drive/folders/0B7EVK8r0v71pVDZFQXRsMDZCX1E"
FILES = (
    RemoteFile("img.zip", _DRIVE + " (Img/img.zip)", None),
    RemoteFile("list_eval_partition.txt", _DRIVE + " (Eval/list_eval_partition.txt)", None),
)
EXPECTED = {"train": (3997, 25882), "test": (3985, 26830)}
HEADER = ["image_name", "item_id", "evaluation_status"]
STATUS = {
    "train": ("train", True, True),
    "query": ("test", True, False),
    "gallery": ("test", False, True),
}


def open_reader(files: dict[str, Path], work_dir: Path) -> ZipReader:
    """img.zip, read in place."""
    return ZipReader({"img": files["img.zip"]})


def parse_partition(text: str, where: Path) -> pd.DataFrame:
    """Rows (path, item_id, status) of list_eval_partition.txt.

    >>> parse_partition("1\\nimage_name item_id evaluation_status\\n"
    ...                 "img/MEN/Denim/id_00000080/01_1_front.jpg  id_00000080  query\\n",
    ...                 Path("x")).values.tolist()
    [['img/MEN/Denim/id_00000080/01_1_front.jpg', 'id_00000080', 'query']]
    """
    lines = [ln.split() for ln in text.splitlines() if ln.strip()]
    if len(lines) < 3 or lines[1] != HEADER or not lines[0][0].isdigit():
        raise DatasetLayoutError(f"{where}: expected a count line and the header {HEADER}")
    rows = lines[2:]
    if int(lines[0][0]) != len(rows) or any(len(r) != 3 for r in rows):
        raise DatasetLayoutError(
            f"{where}: {len(rows)} rows, count line says {lines[0][0]}, "
            "or a row lacks one of the 3 columns"
        )
    return pd.DataFrame(rows, columns=["path", "item_id", "status"])


def build_index(files: dict[str, Path], reader: Reader) -> pd.DataFrame:
    """Index from list_eval_partition.txt; every listed image must be in img.zip."""
    where = files["list_eval_partition.txt"]
    df = parse_partition(where.read_text(), where)
    bad = sorted(set(df["status"]) - set(STATUS))
    if bad:
        raise DatasetLayoutError(f"{where}: unknown evaluation_status {bad}, valid: {list(STATUS)}")
    parts = df["path"].str.split("/")
    if not (parts.str.len() == 5).all() or not (parts.str[3] == df["item_id"]).all():
        raise DatasetLayoutError(f"{where}: paths must be img/<GENDER>/<Category>/<item_id>/<file>")
    missing = [p for p, ok in zip(df["path"], reader.exists(list(df["path"]))) if not ok]
    if missing:
        raise DatasetLayoutError(
            f"{files['img.zip']}: {len(missing)} listed image(s) missing, e.g. {missing[0]}"
        )
    category = parts.str[1] + "/" + parts.str[2]
    status = df["status"].map(STATUS)
    return pd.DataFrame(
        {
            "path": df["path"],
            "label": df["item_id"].str.removeprefix("id_").astype("int64"),
            "coarse_label": category.map(
                {c: i for i, c in enumerate(sorted(set(category)))}
            ).astype("int64"),
            "split": status.str[0],
            "is_query": status.str[1].astype(bool),
            "is_gallery": status.str[2].astype(bool),
            "class_name": df["item_id"],
            "coarse_name": category,
        }
    )


SPEC = DatasetSpec(
    name="inshop",
    files=FILES,
    channels=3,
    expected=EXPECTED,
    open=open_reader,
    build=build_index,
    homepage="https://mmlab.ie.cuhk.edu.hk/projects/DeepFashion/InShopRetrieval.html",
)
