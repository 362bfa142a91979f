"""Where dataset files come from: the data directory, downloads, archive readers.

Look-up order for each file of a dataset ``name``:

1. ``<data_dir>/<name>/<filename>`` — the documented data directory (may be read-only; env var
   ``DMLSTUDY_DATA_DIR`` overrides the argument). Local copies are verified by layout and counts.
2. ``<work_dir>/downloads/<name>/<filename>`` — an earlier verified download.
3. Download from the upstream URL into (2), resuming a partial file and verifying the md5.

Archives that allow random access (zip) are read in place; tar.gz archives are extracted once into
``<work_dir>/extracted/<name>/`` (never into ``data_dir``).
"""

from __future__ import annotations

import os
import shutil
import tarfile
import urllib.error
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pandas as pd

from .download import download_file
from .errors import DatasetLayoutError, DatasetNotFoundError

DATA_DIR_ENV = "DMLSTUDY_DATA_DIR"
WORK_DIR_ENV = "DMLSTUDY_WORK_DIR"


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """The data directory: ``$DMLSTUDY_DATA_DIR`` if set, else ``data_dir`` (env var > argument)."""
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env).expanduser()
    if data_dir is None:
        raise ValueError(f"no data directory: pass data_dir or set the {DATA_DIR_ENV} env var")
    return Path(data_dir).expanduser()


def default_work_dir() -> Path:
    """Writable dir for downloads and extractions: ``$DMLSTUDY_WORK_DIR`` or ~/.cache/dmlstudy."""
    return Path(os.environ.get(WORK_DIR_ENV, Path.home() / ".cache" / "dmlstudy")).expanduser()


@dataclass(frozen=True)
class RemoteFile:
    """One upstream file: name, URL, md5 (None: manual-only source without a public checksum)."""

    filename: str
    url: str
    md5: str | None


class Reader(Protocol):
    """Reads image bytes by index path."""

    def read(self, path: str) -> bytes: ...

    def exists(self, paths: list[str]) -> list[bool]: ...


class ZipReader:
    """Reads members of zip archives, routed by the first path component (picklable, lazy).

    >>> ZipReader({"images_background": Path("x.zip")}).archive_for("images_background/a/b.png")
    PosixPath('x.zip')
    """

    def __init__(self, archives: dict[str, Path]):
        self.archives = {k: Path(v) for k, v in archives.items()}
        self._open: dict[str, zipfile.ZipFile] = {}

    def __getstate__(self) -> dict:
        return {"archives": self.archives, "_open": {}}

    def archive_for(self, path: str) -> Path:
        top = path.split("/", 1)[0]
        if top not in self.archives:
            raise DatasetLayoutError(f"no archive holds {path!r} (known: {sorted(self.archives)})")
        return self.archives[top]

    def _zip(self, path: str) -> zipfile.ZipFile:
        top = path.split("/", 1)[0]
        if top not in self._open:
            archive = self.archive_for(path)
            try:
                self._open[top] = zipfile.ZipFile(archive)
            except (zipfile.BadZipFile, OSError) as err:  # truncated copy, not a zip, unreadable
                raise DatasetLayoutError(
                    f"{archive} is not a readable zip archive ({err}); "
                    "replace it with the official file"
                ) from err
        return self._open[top]

    def names(self, top: str) -> list[str]:
        return self._zip(top + "/").namelist()

    def read(self, path: str) -> bytes:
        archive = self._zip(path)
        try:
            return archive.read(path)
        except KeyError:
            raise DatasetLayoutError(f"{self.archive_for(path)} has no member {path!r}") from None
        except (zipfile.BadZipFile, zlib.error, EOFError) as err:  # bad CRC, corrupt data
            raise DatasetLayoutError(
                f"{self.archive_for(path)}: member {path!r} is corrupt "
                f"({err}); replace the archive with the official file"
            ) from err

    def exists(self, paths: list[str]) -> list[bool]:
        tops = {p.split("/", 1)[0] for p in paths}
        names = {n for t in tops if t in self.archives for n in self.names(t)}
        return [p in names for p in paths]


class DirReader:
    """Reads files below a directory (an extracted archive)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def read(self, path: str) -> bytes:
        try:
            return (self.root / path).read_bytes()
        except FileNotFoundError:
            raise DatasetLayoutError(f"missing file {self.root / path}") from None

    def exists(self, paths: list[str]) -> list[bool]:
        return [(self.root / p).is_file() for p in paths]


def extract_once(archive: Path, dest: Path) -> Path:
    """Extract a tar archive into ``dest`` once (tmp dir + rename, so never half-extracted).

    The marker records the archive's name, size and mtime, so a replaced archive (e.g. a wrong
    file swapped for the official one) is extracted again instead of reusing a stale tree.
    """
    marker = dest / ".extracted"
    st = archive.stat()
    stamp = f"{archive.name} {st.st_size} {st.st_mtime_ns}"
    if marker.is_file() and marker.read_text() == stamp:
        return dest
    tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
    except (tarfile.TarError, EOFError, OSError) as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DatasetLayoutError(f"cannot extract {archive}: {err}; replace the file") from err
    (tmp / ".extracted").write_text(stamp)
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)
    return dest


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset: upstream files, channels, expected counts, and its layout parser.

    ``open`` turns ``{filename: local path}`` plus a work dir into a Reader; ``build`` turns the
    files and reader into an index (columns of :mod:`dmlstudy.data.index`); ``expected`` maps
    split → (classes, images) of the full official dataset.
    """

    name: str
    files: tuple[RemoteFile, ...]
    channels: int
    expected: dict[str, tuple[int, int]]
    open: Callable[[dict[str, Path], Path], Reader]
    build: Callable[[dict[str, Path], Reader], pd.DataFrame]
    homepage: str = ""
    notes: str = field(default="", compare=False)


def absent_files(spec: DatasetSpec, data_dir: Path, work_dir: Path) -> list[RemoteFile]:
    """The files of ``spec`` neither in ``<data_dir>/<name>/`` nor among the earlier downloads
    in ``<work_dir>/downloads/<name>/`` (look-up order 1 and 2 of this module)."""
    return [
        rf
        for rf in spec.files
        if not (data_dir / spec.name / rf.filename).is_file()
        and not (work_dir / "downloads" / spec.name / rf.filename).is_file()
    ]


def missing_files_message(
    spec: DatasetSpec, data_dir: Path, files: list[RemoteFile], reason: str
) -> str:
    """Why ``files`` of ``spec`` cannot be had (``reason``), then one line per file: its URL and
    the place to put it."""
    lines = [f"dataset '{spec.name}' lacks {len(files)} file(s) ({reason}):"]
    for rf in files:
        how = "download it" if rf.md5 else "download it manually (no public checksum)"
        place = data_dir / spec.name / rf.filename
        lines.append(f"  {rf.filename}: {how} from {rf.url} and put it at {place}")
    lines.append(f"  (data directory {data_dir}; the env var {DATA_DIR_ENV} overrides it)")
    return "\n".join(lines)


def locate_files(
    spec: DatasetSpec, data_dir: Path, work_dir: Path, download: bool = True
) -> dict[str, Path]:
    """Map every file of ``spec`` to a local path (data dir, earlier download, or new download)."""
    found: dict[str, Path] = {}
    absent = absent_files(spec, data_dir, work_dir)
    for rf in spec.files:
        local = data_dir / spec.name / rf.filename
        cached = work_dir / "downloads" / spec.name / rf.filename
        if local.is_file():
            found[rf.filename] = local
        elif cached.is_file():
            found[rf.filename] = cached
        else:
            others = "".join(
                f"; it also needs {o.filename} at {data_dir / spec.name / o.filename}"
                f" (from {o.url})"
                for o in absent[absent.index(rf) + 1 :]
            )  # not tried yet
            hint = (
                f"dataset '{spec.name}' needs {rf.filename}: put it at {local} "
                f"(data directory {data_dir}, env var {DATA_DIR_ENV})"
            )
            if rf.md5 is None:
                raise DatasetNotFoundError(f"{hint}; download it manually from {rf.url}{others}")
            if not download:
                raise DatasetNotFoundError(f"{hint}, or allow downloading it from {rf.url}{others}")
            try:
                found[rf.filename] = download_file(rf.url, cached, rf.md5)
            except (urllib.error.URLError, OSError) as err:
                raise DatasetNotFoundError(
                    f"{hint}; downloading it from {rf.url} failed ({err}){others}"
                ) from err
    return found
