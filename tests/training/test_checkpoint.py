"""Atomic writes: the file is either the previous or the new one; a full disk (ENOSPC, simulated
by a file that refuses writes after a few bytes) names the file and leaves no ``.tmp`` behind."""

from __future__ import annotations

import errno
import io
import json

import numpy as np
import pytest
import torch

from dmlstudy.training import checkpoint
from dmlstudy.training.checkpoint import atomic_json, atomic_npz, atomic_save, load_checkpoint

WRITERS = {
    "checkpoint": (lambda p: atomic_save({"w": torch.arange(4096.0)}, p), "last.pt"),
    "json": (lambda p: atomic_json({"values": list(range(4096))}, p), "metrics.json"),
    "npz": (lambda p: atomic_npz(p, embeddings=np.ones((512, 8), np.float32)), "emb.npz"),
}


class FullDisk(io.FileIO):
    """A real file on a disk that fills up after ``room`` bytes."""

    room = 100

    def write(self, data) -> int:
        if self.tell() + len(data) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().write(data)


def _full_disk_open(path, mode="r", *args, **kwargs):
    raw = FullDisk(path, "wb")
    buffered = io.BufferedWriter(raw, buffer_size=16)
    return buffered if "b" in mode else io.TextIOWrapper(buffered, encoding="utf-8")


def test_writes_round_trip(tmp_path):
    atomic_save({"w": torch.arange(3)}, tmp_path / "a.pt")
    assert torch.equal(load_checkpoint(tmp_path / "a.pt")["w"], torch.arange(3))
    atomic_json({"a": [1, 2]}, tmp_path / "m.json")
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": [1, 2]}
    atomic_npz(tmp_path / "e.npz", x=np.arange(5))
    assert np.load(tmp_path / "e.npz")["x"].tolist() == [0, 1, 2, 3, 4]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pt", "e.npz", "m.json"]


def test_checkpoint_bytes_equal_torch_save(tmp_path):
    obj = {"w": torch.arange(10.0), "step": 3}
    atomic_save(obj, tmp_path / "a.pt")
    with open(tmp_path / "b.pt", "wb") as f:
        torch.save(obj, f)
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()


@pytest.mark.parametrize("previous", [False, True], ids=["new", "replacing"])
@pytest.mark.parametrize("kind", WRITERS)
def test_full_disk_names_the_file_and_leaves_no_tmp(tmp_path, monkeypatch, kind, previous):
    write, name = WRITERS[kind]
    target = tmp_path / name
    if previous:
        target.write_bytes(b"previous")
    monkeypatch.setattr(checkpoint, "open", _full_disk_open, raising=False)
    with pytest.raises(OSError) as err:
        write(target)
    assert err.value.errno == errno.ENOSPC
    msg = str(err.value)
    assert f"No space left on device while writing {target}" in msg and "free disk space" in msg
    assert ("previous file is unchanged" if previous else "nothing was written") in msg
    assert [p.name for p in tmp_path.iterdir()] == ([name] if previous else [])
    if previous:
        assert target.read_bytes() == b"previous"


def test_torch_alone_hides_the_full_disk(tmp_path, monkeypatch):
    """Why the recorder exists: torch.save on a full disk raises an unreadable RuntimeError."""
    with (
        pytest.raises(RuntimeError, match="unexpected pos"),
        _full_disk_open(tmp_path / "x", "wb") as f,
    ):
        torch.save({"w": torch.arange(4096.0)}, f)


def test_other_errors_pass_through_and_clean_up(tmp_path):
    with pytest.raises(TypeError, match="not JSON serializable"):
        atomic_json({"a": object()}, tmp_path / "m.json")
    assert list(tmp_path.iterdir()) == []


class Payload:
    """Unpickling this would run code (here: create a file)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (type(self.marker).touch, (self.marker,))


def test_checkpoints_load_tensors_only(tmp_path):
    """load_checkpoint uses torch.load(weights_only=True): a checkpoint carrying a pickled object
    (a tampered or foreign file) is refused before any of its code runs."""
    marker = tmp_path / "code-ran"
    torch.save({"model_state": {"w": torch.ones(2)}, "extra": Payload(marker)}, tmp_path / "x.pt")
    with pytest.raises(Exception, match="Weights only load failed"):
        load_checkpoint(tmp_path / "x.pt")
    assert not marker.exists()
