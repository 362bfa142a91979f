"""What a run's result depends on besides its settings: the training code and the prepared data.

DVC reruns a training stage when its code or prepared-data dependency changes; the run folder is
persistent (``persist: true``), so the trainer itself must tell such a rerun from a resume:
a run folder is reused or resumed only if these fingerprints (stored in ``checkpoint.pt`` and
``metrics.json`` as ``inputs``) are unchanged too. Library versions (torch, timm) are not
covered, as DVC does not cover them either.

>>> len(code_fingerprint())
16
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import dmlstudy

#: Subpackages whose source shapes a training's result (what dvc.yaml's training stages depend
#: on, less the settings mapping, which the stored settings cover).
CODE_PACKAGES = ("data", "evaluation", "losses", "models", "training")
#: The files of a prepared dataset (dmlstudy.data.prepare_dataset).
PREPARED_FILES = ("meta.json", "index.csv", "images.npy")
INPUT_NAMES = {"code": "training code", "data": "prepared data"}


@functools.cache
def code_fingerprint() -> str:
    """sha256 (16 hex digits) of the ``.py`` files of ``CODE_PACKAGES``, names included."""
    root = Path(dmlstudy.__file__).parent
    h = hashlib.sha256()
    for package in CODE_PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            h.update(path.relative_to(root).as_posix().encode() + b"\0")
            h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()[:16]


@functools.cache
def _file_digest(path: str, size: int, mtime_ns: int) -> bytes:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            h.update(chunk)
    return h.digest()


def data_fingerprint(prepared_dir: str | Path) -> str:
    """sha256 (16 hex digits) of the prepared files' contents (a file is read once per process
    while its size and mtime stay the same)."""
    h = hashlib.sha256()
    for name in PREPARED_FILES:
        path = Path(prepared_dir) / name
        st = path.stat()
        digest = _file_digest(str(path.resolve()), st.st_size, st.st_mtime_ns)
        h.update(name.encode() + b"\0" + digest)
    return h.hexdigest()[:16]


def run_inputs(prepared_dir: str | Path) -> dict[str, str]:
    """``{"code": ..., "data": ...}`` of a run on ``prepared_dir``."""
    return {"code": code_fingerprint(), "data": data_fingerprint(prepared_dir)}
