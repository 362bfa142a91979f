"""Prepared data is verified where it is read: a truncated or same-size-corrupted ``images.npy``
fails with the file and ``dvc repro prepare@<dataset>``, before the trainer touches the finished
run (which used to be replaced, 'prepared data differ', and retrained on corrupt pixels)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from dmlstudy.data import PreparedDataError, PreparedDataset
from dmlstudy.training import TrainSettings, train


def _snapshot(folder: Path) -> dict[str, tuple[int, int, bytes]]:
    return {
        p.relative_to(folder).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def finished(
    make_settings: Callable[..., TrainSettings], tiny_prepared: Path, tmp_path: Path
) -> TrainSettings:
    """A finished run on a private copy of the tiny prepared dataset."""
    prepared = tmp_path / "prepared" / "synthetic"
    prepared.mkdir(parents=True)
    for f in tiny_prepared.iterdir():
        (prepared / f.name).write_bytes(f.read_bytes())
    s = make_settings(tmp_path / "run", prepared_dir=prepared, epochs=1, max_steps_per_epoch=1)
    train(s)
    return s


def _fails_naming_the_file_and_leaves_the_run(s: TrainSettings, match: str) -> None:
    before = _snapshot(s.out_dir)
    start = time.perf_counter()
    with pytest.raises(PreparedDataError, match=match) as err:
        train(s)
    print(f"{time.perf_counter() - start:.3f} s: {err.value}")
    assert f"{s.prepared_dir / 'images.npy'}" in str(err.value)
    assert "rebuild it with `dvc repro prepare@synthetic`" in str(err.value)
    assert _snapshot(s.out_dir) == before  # the finished run: not replaced, not retrained


def test_truncated_images_fail_naming_the_file_and_leave_the_finished_run(
    finished: TrainSettings,
) -> None:
    images = finished.prepared_dir / "images.npy"
    size = images.stat().st_size
    with images.open("r+b") as f:
        f.truncate(size - 1000)
    _fails_naming_the_file_and_leaves_the_run(
        finished, rf"is {size - 1000:,} bytes, but prepare wrote {size:,}: the file was truncated"
    )


def test_same_size_corruption_fails_naming_the_file_and_leaves_the_finished_run(
    finished: TrainSettings,
) -> None:
    images = finished.prepared_dir / "images.npy"
    data = bytearray(images.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(255 - b for b in data[len(data) // 2 :][:64])
    images.write_bytes(bytes(data))
    _fails_naming_the_file_and_leaves_the_run(
        finished, r"sha256 differs from the one prepare recorded \(same size"
    )


def test_prepared_before_checksums_were_recorded_is_refused_with_the_fix(
    tiny_prepared: Path, tmp_path: Path
) -> None:
    old = tmp_path / "omniglot"
    old.mkdir()
    for f in tiny_prepared.iterdir():
        (old / f.name).write_bytes(f.read_bytes())
    meta = json.loads((old / "meta.json").read_text())
    del meta["files"]
    (old / "meta.json").write_text(json.dumps({**meta, "name": "omniglot"}))
    with pytest.raises(PreparedDataError, match=r"records no checksums") as err:
        PreparedDataset.load(old)
    assert f"{old / 'meta.json'}" in str(err.value)
    assert "`dvc repro prepare@omniglot`" in str(err.value)
    (old / "meta.json").write_text("{not json")
    with pytest.raises(PreparedDataError, match=r"meta.json is not valid JSON .*prepare@omniglot"):
        PreparedDataset.load(old)
