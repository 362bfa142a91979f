"""Decode a dataset once into a memory-mappable uint8 cache: :func:`prepare_dataset`.

Resize policy (PIL, antialiased):

* Omniglot (1 channel): 105×105 binary drawings → grayscale, box-filtered (area average = ink
  coverage) to ``image_size``². Natural polarity is kept: background 255 (white), ink 0.
* Photos (3 channels, RGB): shorter side resized to ``image_size`` (bicubic; JPEGs are first
  DCT-downscaled with ``Image.draft`` to no less than that size), then a centred square crop.

Output (``out_dir``): ``images.npy`` (N×S×S×C uint8), ``index.csv`` (row i ↔ image i, rows
ordered train, val, test, then by label and path), ``meta.json`` (with each data file's size and
sha256, verified where the cache is read: :mod:`.prepared`). Each file is written to a
temporary name and renamed; ``meta.json`` is removed first and written last, so a killed run
never leaves a cache that looks complete.
"""

from __future__ import annotations

import io
import json
import os
import pickle
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm  # not tqdm.auto: in a notebook kernel without ipywidgets it warns

from .catalog import get_spec, open_dataset
from .errors import DatasetLayoutError, PreparedDataError
from .index import SPLITS
from .prepared import record_files, verify_files
from .sources import Reader, ZipReader
from .splits import assign_validation_split, select_classes

FORMAT_VERSION = 1
CHUNK = 512


def decode_image(data: bytes, channels: int, size: int) -> np.ndarray:
    """Decode image bytes into a ``size×size×channels`` uint8 array (policy in module doc).

    >>> buf = io.BytesIO(); Image.new("RGB", (40, 20), (255, 0, 0)).save(buf, "PNG")
    >>> decode_image(buf.getvalue(), 3, 8).shape
    (8, 8, 3)
    """
    img = Image.open(io.BytesIO(data))
    if channels == 1:
        img = img.convert("L")
        resample = Image.Resampling.BOX
    else:
        img.draft("RGB", (size, size))
        img = img.convert("RGB")
        resample = Image.Resampling.BICUBIC
    w, h = img.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    if (nw, nh) != (w, h):
        img = img.resize((nw, nh), resample)
    left, top = (nw - size) // 2, (nh - size) // 2
    img = img.crop((left, top, left + size, top + size))
    return np.asarray(img, dtype=np.uint8).reshape(size, size, channels)


_READER: Reader | None = None  # per-worker reader, so each process opens its archives once


def _init_worker(reader: Reader) -> None:
    """Install ``reader`` in this process; the pickle round trip drops open archive handles,
    whose file offsets a forked child would otherwise share with its parent."""
    global _READER
    _READER = pickle.loads(pickle.dumps(reader))


def _decode_one(reader: Reader, path: str, channels: int, size: int) -> np.ndarray:
    """Decode one image; an undecodable member is reported with its path and archive."""
    data = reader.read(path)
    try:
        return decode_image(data, channels, size)
    except (OSError, ValueError, Image.DecompressionBombError) as err:  # PIL's decode errors
        where = (
            reader.archive_for(path)
            if isinstance(reader, ZipReader)
            else getattr(reader, "root", "?")
        )
        raise DatasetLayoutError(
            f"{where}: cannot decode image {path!r} ({err}); the archive is corrupt or not the "
            "official one: replace it"
        ) from err


def _decode_chunk(args: tuple[list[str], int, int]) -> np.ndarray:
    paths, channels, size = args
    assert _READER is not None
    return np.stack([_decode_one(_READER, p, channels, size) for p in paths])


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _decode_all(
    reader: Reader, paths: list[str], channels: int, size: int, target: Path, workers: int
) -> None:
    tmp = target.with_name(target.name + ".tmp")
    arr = np.lib.format.open_memmap(
        tmp, mode="w+", dtype=np.uint8, shape=(len(paths), size, size, channels)
    )
    jobs = [(paths[i : i + CHUNK], channels, size) for i in range(0, len(paths), CHUNK)]
    bar = tqdm(total=len(paths), unit="img", desc=f"decode {target.parent.name}")
    try:
        if workers > 1:
            with get_context("fork").Pool(workers, _init_worker, (reader,)) as pool:
                for i, block in enumerate(pool.imap(_decode_chunk, jobs)):
                    arr[i * CHUNK : i * CHUNK + len(block)] = block
                    bar.update(len(block))
        else:
            global _READER
            _READER = reader
            for i, job in enumerate(jobs):
                block = _decode_chunk(job)
                arr[i * CHUNK : i * CHUNK + len(block)] = block
                bar.update(len(block))
        arr.flush()
    except BaseException:
        del arr
        tmp.unlink(missing_ok=True)
        raise
    finally:
        bar.close()
    del arr
    os.replace(tmp, target)


def prepare_dataset(
    name: str,
    data_dir: str | Path | None,
    out_dir: str | Path,
    *,
    image_size: int,
    val_fraction: float,
    seed: int,
    val_by: str = "class",
    max_classes_per_split: int | None = None,
    work_dir: str | Path | None = None,
    download: bool = True,
    workers: int = 1,
) -> Path:
    """Build ``out_dir`` with images.npy, index.csv and meta.json; return ``out_dir``.

    ``max_classes_per_split`` keeps that many classes per official split (evenly spaced labels,
    before the validation split): the tiny profile for tests/CI. An existing cache written with
    the same settings is reused. ``workers > 1`` decodes in a fork pool.
    """
    if image_size < 1:
        raise ValueError(f"image_size must be a positive int, got {image_size}")
    out_dir = Path(out_dir)
    config = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "image_size": image_size,
        "val_fraction": val_fraction,
        "val_by": val_by,
        "seed": seed,
        "max_classes_per_split": max_classes_per_split,
    }
    meta_path = out_dir / "meta.json"
    if meta_path.is_file() and (out_dir / "images.npy").is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("config") == config:
            try:  # reused only as prepare wrote it (no damage since, checksums recorded)
                verify_files(out_dir, meta)
                return out_dir
            except (OSError, PreparedDataError):
                pass
    channels = get_spec(name).channels
    index, reader = open_dataset(name, data_dir, work_dir=work_dir, download=download)
    if max_classes_per_split is not None:
        index = select_classes(index, max_classes_per_split)
    index = assign_validation_split(index, val_fraction, seed, by=val_by)
    order = index["split"].map({s: i for i, s in enumerate(SPLITS)})
    index = (
        index.assign(_o=order)
        .sort_values(["_o", "label", "path"])
        .drop(columns="_o")
        .reset_index(drop=True)
    )

    out_dir.mkdir(parents=True, exist_ok=True)
    meta_path.unlink(missing_ok=True)
    _decode_all(
        reader, index["path"].tolist(), channels, image_size, out_dir / "images.npy", workers
    )
    tmp = out_dir / "index.csv.tmp"
    index.to_csv(tmp, index=False)
    os.replace(tmp, out_dir / "index.csv")
    resize = (
        "grayscale, box filter to S×S, ink 0 on white 255"
        if channels == 1
        else "RGB, bicubic shorter side to S, centre crop S×S"
    )
    meta = {
        "name": name,
        "image_size": image_size,
        "channels": channels,
        "config": config,
        "resize": resize,
        "counts": {},
        "class_names": {},
        "files": record_files(out_dir),  # checked by PreparedDataset.load
    }
    for split in SPLITS:
        part = index[index["split"] == split]
        names = part.drop_duplicates("label").sort_values("label")["class_name"].tolist()
        meta["counts"][split] = {"classes": len(names), "images": len(part)}
        meta["class_names"][split] = names
    _atomic_write_text(meta_path, json.dumps(meta, indent=1))
    return out_dir
