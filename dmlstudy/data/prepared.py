"""Read side of the image cache written by :func:`dmlstudy.data.prepare_dataset`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DatasetLayoutError
from .index import SPLITS, validate_index

_STR_COLUMNS = {"path": str, "split": str, "class_name": str, "coarse_name": str}


@dataclass(frozen=True)
class PreparedDataset:
    """A prepared dataset: ``index`` (row i ↔ ``images[i]``), read-only memmapped ``images``
    (N×S×S×C uint8) and ``meta`` (name, image_size, channels, counts, class names per split)."""

    index: pd.DataFrame
    images: np.ndarray
    meta: dict

    @classmethod
    def load(cls, out_dir: str | Path) -> PreparedDataset:
        """Open ``out_dir`` (images memory-mapped read-only); errors name a missing/bad file."""
        out_dir = Path(out_dir)
        for f in ("meta.json", "index.csv", "images.npy"):
            if not (out_dir / f).is_file():
                raise FileNotFoundError(
                    f"{out_dir / f} missing: run prepare_dataset(..., "
                    f"out_dir={str(out_dir)!r}) first (or it was interrupted)"
                )
        meta = json.loads((out_dir / "meta.json").read_text())
        index = pd.read_csv(out_dir / "index.csv", dtype=_STR_COLUMNS, keep_default_na=False)
        validate_index(index)
        images = np.load(out_dir / "images.npy", mmap_mode="r")
        if images.dtype != np.uint8 or images.ndim != 4 or len(images) != len(index):
            raise DatasetLayoutError(
                f"{out_dir / 'images.npy'}: shape {images.shape} "
                f"{images.dtype} does not match {len(index)} index rows"
            )
        return cls(index=index, images=images, meta=meta)

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
