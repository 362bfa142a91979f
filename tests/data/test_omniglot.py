"""The FULL offline Omniglot archives (shared_omniglot_dir) and the tiny profile."""

from __future__ import annotations

import time

import numpy as np
import pytest

from dmlstudy.data import DatasetLayoutError, PreparedDataset, load_index, omniglot, prepare_dataset
from dmlstudy.data.omniglot import parse_paths
from dmlstudy.data.sources import ZipReader


def test_full_archives_index(shared_omniglot_dir, tmp_path):
    index = load_index(
        "omniglot", shared_omniglot_dir.parent, work_dir=tmp_path / "w", download=False
    )
    for split, classes, alphabets in (("train", 964, 30), ("test", 659, 20)):
        part = index[index.split == split]
        assert len(part) == classes * 20
        assert part["label"].nunique() == classes
        assert (part.groupby("label").size() == 20).all()
        assert part["coarse_label"].nunique() == alphabets == part["coarse_name"].nunique()
    assert index["label"].max() == 1622 and index["coarse_label"].max() == 49
    assert not (tmp_path / "w" / "downloads").exists()  # local copy used, nothing downloaded


def test_tiny_profile_is_quick(shared_omniglot_dir, tmp_path):
    t0 = time.perf_counter()
    out = prepare_dataset(
        "omniglot",
        shared_omniglot_dir.parent,
        tmp_path / "tiny",
        image_size=28,
        val_fraction=0.2,
        seed=0,
        max_classes_per_split=10,
        work_dir=tmp_path / "w",
    )
    elapsed = time.perf_counter() - t0
    ds = PreparedDataset.load(out)
    assert ds.images.shape == (400, 28, 28, 1)
    assert ds.meta["counts"] == {
        "train": {"classes": 8, "images": 160},
        "val": {"classes": 2, "images": 40},
        "test": {"classes": 10, "images": 200},
    }
    assert ds.index["coarse_label"].nunique() > 10  # spread over alphabets
    img = ds.images[0, :, :, 0]
    assert np.median(img) == 255 and img.min() < 128  # white background, dark ink
    print(f"tiny Omniglot profile prepared in {elapsed:.2f} s")


def test_full_size_zips_with_wrong_alphabets_are_rejected(tmp_path, monkeypatch):
    class FakeReader(ZipReader):  # full image counts, but one alphabet too few in train
        def names(self, top):
            n_alph, n_chars = (29, 964) if top == "images_background" else (20, 659)
            return [
                f"{top}/A{c % n_alph:02d}/character{c:03d}/{c}_{d:02d}.png"
                for c in range(n_chars)
                for d in range(1, 21)
            ]

    files = {
        "images_background.zip": tmp_path / "b.zip",
        "images_evaluation.zip": tmp_path / "e.zip",
    }
    with pytest.raises(DatasetLayoutError, match=r"found {'train': 29, 'test': 20}"):
        omniglot.build_index(files, FakeReader({}))


def test_parse_paths_rejects_unexpected_depth():
    with pytest.raises(DatasetLayoutError, match="unexpected Omniglot member"):
        parse_paths(["images_background/Latin/0001_01.png"], "train")
