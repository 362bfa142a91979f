"""Read side of the image cache written by :func:`dmlstudy.data.prepare_dataset`.

The prepared data is verified where it is read: ``prepare`` records each data file's size and
sha256 in ``meta.json`` (``files``, :func:`record_files`), and :meth:`PreparedDataset.load`
checks them — sizes first (a truncated file fails at once), then hashes (a same-size corruption)
— before anything is memory-mapped, so a damaged cache fails with the file's name and the fix
(``dvc repro prepare@<dataset>``) instead of numpy's ``mmap length is greater than file size``,
or, worse, a training on corrupt pixels. A file is hashed once per process while its size and
mtime stay the same (``images.npy`` of a photo dataset is gigabytes). A folder prepared before
checksums were recorded is refused the same way: accepting it would leave exactly the silent
corruption this check exists for, and ``dvc repro`` rebuilds it anyway (its code changed).
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import DatasetLayoutError, PreparedDataError
from .index import SPLITS, validate_index

_STR_COLUMNS = {"path": str, "split": str, "class_name": str, "coarse_name": str}
#: The prepared files whose size and sha256 ``meta.json`` records (meta.json itself is written
#: last and parsed as JSON).
CHECKED_FILES = ("index.csv", "images.npy")


@functools.cache
def _digest(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            h.update(chunk)
    return h.hexdigest()


def file_sha256(path: str | Path) -> str:
    """sha256 (hex) of ``path``'s contents, read once per process per (path, size, mtime)."""
    st = Path(path).stat()
    return _digest(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


def record_files(out_dir: str | Path) -> dict[str, dict[str, Any]]:
    """``{name: {"bytes", "sha256"}}`` of the prepared data files: the ``files`` entry of
    meta.json, written by ``prepare`` once they are in place."""
    out_dir = Path(out_dir)
    return {
        name: {"bytes": (out_dir / name).stat().st_size, "sha256": file_sha256(out_dir / name)}
        for name in CHECKED_FILES
    }


def _fix(out_dir: Path, meta: dict[str, Any] | None) -> str:
    name = (meta or {}).get("name") or out_dir.name
    return (
        f"rebuild it with `dvc repro prepare@{name}` (outside DVC: prepare_dataset(..., "
        f"out_dir={str(out_dir)!r}))"
    )


def verify_files(out_dir: str | Path, meta: dict[str, Any]) -> None:
    """Raise :class:`PreparedDataError` naming the file and the fix unless every data file has
    the size, then the sha256, that ``meta["files"]`` records."""
    out_dir = Path(out_dir)
    recorded = meta.get("files")
    if not isinstance(recorded, dict) or not all(n in recorded for n in CHECKED_FILES):
        raise PreparedDataError(
            f"{out_dir / 'meta.json'} records no checksums of the prepared files (prepared "
            f"before they were recorded), so the data cannot be verified: {_fix(out_dir, meta)}"
        )
    for name in CHECKED_FILES:
        path, want = out_dir / name, recorded[name]
        size = path.stat().st_size
        if size != want["bytes"]:
            raise PreparedDataError(
                f"{path} is {size:,} bytes, but prepare wrote {want['bytes']:,}: the file was "
                f"truncated or replaced since; {_fix(out_dir, meta)}"
            )
    for name in CHECKED_FILES:
        path, want = out_dir / name, recorded[name]
        if file_sha256(path) != want["sha256"]:
            raise PreparedDataError(
                f"{path}: sha256 differs from the one prepare recorded (same size: the file was "
                f"overwritten or corrupted since); {_fix(out_dir, meta)}"
            )


@dataclass(frozen=True)
class PreparedDataset:
    """A prepared dataset: ``index`` (row i ↔ ``images[i]``), read-only memmapped ``images``
    (N×S×S×C uint8) and ``meta`` (name, image_size, channels, counts, class names per split)."""

    index: pd.DataFrame
    images: np.ndarray
    meta: dict

    @classmethod
    def load(cls, out_dir: str | Path) -> PreparedDataset:
        """Open ``out_dir`` (images memory-mapped read-only) after checking each file's recorded
        size and sha256 (:func:`verify_files`); errors name a missing/bad file and the fix."""
        out_dir = Path(out_dir)
        for f in ("meta.json", "index.csv", "images.npy"):
            if not (out_dir / f).is_file():
                raise FileNotFoundError(
                    f"{out_dir / f} missing: run prepare_dataset(..., "
                    f"out_dir={str(out_dir)!r}) first (or it was interrupted)"
                )
        try:
            meta = json.loads((out_dir / "meta.json").read_text())
        except ValueError as err:
            meta = f"not valid JSON ({err})"
        if not isinstance(meta, dict):
            raise PreparedDataError(f"{out_dir / 'meta.json'} is {meta}; {_fix(out_dir, None)}")
        verify_files(out_dir, meta)
        index = pd.read_csv(out_dir / "index.csv", dtype=_STR_COLUMNS, keep_default_na=False)
        validate_index(index)
        images = np.load(out_dir / "images.npy", mmap_mode="r")
        if images.dtype != np.uint8 or images.ndim != 4 or len(images) != len(index):
            raise DatasetLayoutError(
                f"{out_dir / 'images.npy'}: shape {images.shape} "
                f"{images.dtype} does not match {len(index)} index rows"
            )
        return cls(index=index, images=images, meta=meta)

    def with_coarse_validation(self, val_fraction: float) -> PreparedDataset:
        """This dataset with ``val_fraction`` of its non-test coarse classes in the validation
        split (:func:`dmlstudy.data.splits.widen_coarse_validation`); the test split and the
        files on disk are unchanged."""
        from .splits import widen_coarse_validation

        return replace(self, index=widen_coarse_validation(self.index, val_fraction))

    def _rows(self, split: str) -> np.ndarray:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; valid: {list(SPLITS)}")
        return np.flatnonzero((self.index["split"] == split).to_numpy())

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(row indices, labels remapped to 0..C-1 in sorted original-label order); empty when
        the split has no rows (e.g. val_fraction=0)."""
        rows = self._rows(name)
        _, labels = np.unique(self.index["label"].to_numpy()[rows], return_inverse=True)
        return rows, labels.astype(np.int64)

    def class_names(self, split: str) -> list[str]:
        """Class names of ``split`` in the order of the remapped labels."""
        part = self.index.iloc[self._rows(split)]
        return part.drop_duplicates("label").sort_values("label")["class_name"].tolist()

    def coarse_labels(self, split: str) -> np.ndarray:
        """Coarse label of every row of ``split`` (aligned with ``split(name)[0]``; -1 = none)."""
        return self.index["coarse_label"].to_numpy()[self._rows(split)].astype(np.int64)

    def query_gallery(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """(is_query, is_gallery) boolean masks aligned with ``split(name)[0]``."""
        rows = self._rows(split)
        return (self.index["is_query"].to_numpy()[rows], self.index["is_gallery"].to_numpy()[rows])
