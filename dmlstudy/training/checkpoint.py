"""Atomic checkpoint / JSON / npz writes (tmp file + fsync + ``os.replace``) so a crash or
``kill -9`` at any moment leaves either the previous or the new file, never a torn one. A failed
write (a full disk: ``ENOSPC``) removes its ``.tmp`` and raises ``OSError`` naming the file, with
the errno kept (torch.save alone would say "unexpected pos 704 vs 598").

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> atomic_json({"a": 1}, d / "m.json"); (d / "m.json").read_text()
'{\\n  "a": 1\\n}'
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch


class _Recorder:
    """A file wrapper that remembers the OSError of a failed write (torch.save turns it into an
    unreadable RuntimeError); everything else goes to the file."""

    def __init__(self, f: IO) -> None:
        self.f, self.error = f, None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.f, name)

    def write(self, data: Any) -> int:
        try:
            return self.f.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        self.f.flush()


def _replace(tmp: Path, path: Path) -> None:
    os.replace(tmp, path)
    try:  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:  # pragma: no cover - directories cannot be fsynced on some filesystems
        pass


def _atomic_write(path: str | Path, write: Callable[[Any], None], mode: str) -> None:
    """Write ``path`` through ``<path>.tmp``; on any failure the tmp file is removed and an
    ``OSError`` (full disk, permissions…) is re-raised naming ``path``."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    recorder = None
    try:
        with open(tmp, mode) as f:
            recorder = _Recorder(f)
            write(recorder)
            f.flush()
            os.fsync(f.fileno())
        _replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        cause = exc if isinstance(exc, OSError) else getattr(recorder, "error", None)
        if cause is None:
            raise
        why = cause.strerror or str(cause)
        fix = (
            "free disk space and run again (finished work is kept)"
            if cause.errno == errno.ENOSPC
            else "check that the folder is writable"
        )
        kept = "the previous file is unchanged" if path.exists() else "nothing was written"
        raise OSError(cause.errno, f"{why} while writing {path}: {fix}; {kept}") from exc


def atomic_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to ``path`` atomically."""
    _atomic_write(path, lambda f: torch.save(obj, f), "wb")


def atomic_json(obj: Any, path: str | Path) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    _atomic_write(path, lambda f: json.dump(obj, f, indent=2), "w")


def atomic_npz(path: str | Path, **arrays: Any) -> None:
    """``np.savez`` of ``arrays`` to ``path`` (name kept as given) atomically."""
    _atomic_write(path, lambda f: np.savez(f, **arrays), "wb")


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by the trainer (plain tensors / containers only:
    ``weights_only``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    return torch.load(path, map_location=map_location, weights_only=True)
