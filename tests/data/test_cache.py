"""prepare_dataset / PreparedDataset: layout, row↔image, resize policy, atomic writes, reuse."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
from PIL import Image

from dmlstudy.data import PreparedDataset, prepare_dataset
from dmlstudy.data import cache as cache_mod
from dmlstudy.data.cache import decode_image
from dmlstudy.data.catalog import open_dataset


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


def test_photo_policy_short_side_then_center_crop():
    arr = np.zeros((20, 60, 3), np.uint8)  # H=20, W=60: left red, middle green, right blue
    arr[:, :20, 0] = arr[:, 20:40, 1] = arr[:, 40:, 2] = 255
    out = decode_image(_png(arr), 3, 10)
    assert out.shape == (10, 10, 3) and out.dtype == np.uint8
    assert (out[:, 2:8, 1] > 250).all() and (out[:, 2:8, [0, 2]] < 5).all()


def test_grayscale_policy_area_average_keeps_polarity():
    arr = np.full((105, 105), 255, np.uint8)
    arr[:, :35] = 0  # ink (black) on the left third
    out = decode_image(_png(arr), 1, 3)
    assert out.shape == (3, 3, 1)
    assert (out[:, 0, 0] == 0).all() and (out[:, 1:, 0] == 255).all()
    checker = ((np.indices((104, 104)).sum(0) % 2) * 255).astype(np.uint8)
    assert np.abs(decode_image(_png(checker), 1, 4).astype(int) - 127.5).max() <= 1  # antialiased
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 0] = 255
    assert decode_image(_png(rgb), 1, 4)[0, 0, 0] == 76  # ITU-R 601 luma of pure red


@pytest.mark.parametrize(
    "name,channels", [("omniglot", 1), ("cub200", 3), ("cars196", 3), ("sop", 3), ("inshop", 3)]
)
def test_prepare_rows_match_images(name, channels, tiny_dataset, tmp_path):
    data_dir = tiny_dataset(name)
    out = prepare_dataset(
        name,
        data_dir,
        tmp_path / "out",
        image_size=8,
        val_fraction=0.5,
        seed=0,
        work_dir=tmp_path / "w",
    )
    ds = PreparedDataset.load(out)
    assert isinstance(ds.images, np.memmap) and not ds.images.flags.writeable
    assert ds.images.shape == (len(ds.index), 8, 8, channels)
    assert ds.meta["name"] == name and ds.meta["channels"] == channels
    assert list(ds.index["split"]) == sorted(ds.index["split"], key=["train", "val", "test"].index)
    _, reader = open_dataset(name, data_dir, work_dir=tmp_path / "w")
    for i, path in enumerate(ds.index["path"]):  # naive recomputation, row by row
        np.testing.assert_array_equal(ds.images[i], decode_image(reader.read(path), channels, 8))
    for split in ("train", "val", "test"):
        rows, labels = ds.split(split)
        assert ds.meta["counts"][split] == {"classes": len(set(labels)), "images": len(rows)}
        assert ds.meta["class_names"][split] == ds.class_names(split)
        assert sorted(set(labels)) == list(range(len(ds.class_names(split))))
        orig = ds.index["label"].to_numpy()[rows]
        np.testing.assert_array_equal(labels, np.searchsorted(np.unique(orig), orig))
        names = ds.index["class_name"].to_numpy()[rows]
        assert all(ds.class_names(split)[lab] == n for lab, n in zip(labels, names))
        assert (ds.coarse_labels(split) == ds.index["coarse_label"].to_numpy()[rows]).all()
    assert ds.meta["counts"]["val"]["classes"] >= 1


def test_split_queries_and_errors(tiny_dataset, tmp_path):
    out = prepare_dataset(
        "inshop",
        tiny_dataset("inshop"),
        tmp_path / "o",
        image_size=4,
        val_fraction=0.0,
        seed=0,
        work_dir=tmp_path / "w",
    )
    ds = PreparedDataset.load(out)
    rows, labels = ds.split("val")
    assert len(rows) == len(labels) == 0 and ds.class_names("val") == []
    q, g = ds.query_gallery("test")
    assert q.sum() == 3 and g.sum() == 3 and not (q & g).any()
    with pytest.raises(ValueError, match="valid"):
        ds.split("validation")


def test_killed_prepare_leaves_no_cache(tiny_dataset, tmp_path, monkeypatch):
    data_dir = tiny_dataset("omniglot")
    out = tmp_path / "o"
    prepare_dataset(
        "omniglot", data_dir, out, image_size=4, val_fraction=0.0, seed=0, work_dir=tmp_path / "w"
    )
    calls = []

    def dying(data, channels, size):
        calls.append(1)
        if len(calls) > 5:
            raise KeyboardInterrupt("killed")
        return np.zeros((size, size, channels), np.uint8)

    monkeypatch.setattr(cache_mod, "decode_image", dying)
    with pytest.raises(KeyboardInterrupt):  # different settings → rebuild, killed midway
        prepare_dataset(
            "omniglot",
            data_dir,
            out,
            image_size=6,
            val_fraction=0.0,
            seed=0,
            work_dir=tmp_path / "w",
        )
    assert not (out / "meta.json").exists()
    with pytest.raises(FileNotFoundError, match=r"meta.json missing"):
        PreparedDataset.load(out)
    assert np.load(out / "images.npy").shape[1] == 4  # old complete file intact, not half-new
    assert sorted(p.name for p in out.iterdir()) == ["images.npy", "index.csv"]  # no tmp left


def test_same_settings_reuse_the_cache(tiny_dataset, tmp_path, monkeypatch):
    data_dir = tiny_dataset("omniglot")
    kw = dict(image_size=4, val_fraction=0.5, seed=0, work_dir=tmp_path / "w")
    out = prepare_dataset("omniglot", data_dir, tmp_path / "o", **kw)
    meta = json.loads((out / "meta.json").read_text())
    monkeypatch.setattr(cache_mod, "open_dataset", lambda *a, **k: pytest.fail("rebuilt"))
    assert prepare_dataset("omniglot", data_dir, tmp_path / "o", **kw) == out
    assert meta["config"]["seed"] == 0


def test_damaged_cache_is_rebuilt_not_reused(tiny_dataset, tmp_path):
    data_dir = tiny_dataset("omniglot")
    kw = dict(image_size=4, val_fraction=0.5, seed=0, work_dir=tmp_path / "w")
    out = prepare_dataset("omniglot", data_dir, tmp_path / "o", **kw)
    good = (out / "images.npy").read_bytes()
    files = json.loads((out / "meta.json").read_text())["files"]
    assert files["images.npy"]["bytes"] == len(good)  # recorded for PreparedDataset.load
    (out / "images.npy").write_bytes(good[:-1] + bytes([255 - good[-1]]))  # same size
    with pytest.raises(ValueError, match=r"images.npy: sha256 differs .*prepare@omniglot"):
        PreparedDataset.load(out)
    prepare_dataset("omniglot", data_dir, out, **kw)
    assert (out / "images.npy").read_bytes() == good
    PreparedDataset.load(out)


def test_workers_pool_matches_single_process(tiny_dataset, tmp_path, monkeypatch):
    data_dir = tiny_dataset("sop")
    monkeypatch.setattr(cache_mod, "CHUNK", 3)
    kw = dict(image_size=5, val_fraction=0.0, seed=0, work_dir=tmp_path / "w")
    a = prepare_dataset("sop", data_dir, tmp_path / "a", **kw)
    b = prepare_dataset("sop", data_dir, tmp_path / "b", workers=2, **kw)
    assert (np.load(a / "images.npy") == np.load(b / "images.npy")).all()


def test_bad_image_size(tmp_path):
    with pytest.raises(ValueError, match="image_size"):
        prepare_dataset(
            "omniglot", tmp_path, tmp_path / "o", image_size=0, val_fraction=0.1, seed=0
        )


@pytest.mark.parametrize("workers", [1, 2])
def test_undecodable_image_is_named(workers, tiny_dataset, tmp_path):
    """A listed image whose bytes are not an image (corrupt archive member) fails the prepare
    with an error naming that member, not PIL's "cannot identify image file <BytesIO>"."""
    from dmlstudy.data import DatasetLayoutError

    data_dir = tiny_dataset("sop")
    bad = "Stanford_Online_Products/chair_final/100003_1.JPG"
    archive = data_dir / "sop" / "Stanford_Online_Products.zip"
    with zipfile.ZipFile(archive) as z:
        items = {n: (b"not a jpeg" if n == bad else z.read(n)) for n in z.namelist()}
    with zipfile.ZipFile(archive, "w") as z:
        for n, data in items.items():
            z.writestr(n, data)
    with pytest.raises(
        DatasetLayoutError,
        match=f"{bad}.*Stanford_Online_Products.zip|Stanford_Online_Products.zip.*{bad}",
    ):
        prepare_dataset(
            "sop",
            data_dir,
            tmp_path / "o",
            image_size=4,
            val_fraction=0.0,
            seed=0,
            work_dir=tmp_path / "w",
            workers=workers,
        )
    assert not (tmp_path / "o" / "meta.json").exists()
