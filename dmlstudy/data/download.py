"""Resumable HTTP download with an md5 check (urllib + tqdm).

A partial download lives next to its target as ``<name>.part``; a later call asks the server for
the missing bytes with an HTTP ``Range`` header and appends them (a server that ignores ``Range``
answers 200 and the file restarts from zero). Only a file whose md5 matches the upstream checksum
is renamed to its final name, so the final name never holds a partial or corrupt file.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tqdm import tqdm  # not tqdm.auto: in a notebook kernel without ipywidgets it warns

from .errors import ChecksumError

CHUNK = 1 << 20


def md5sum(path: str | Path) -> str:
    """Hex md5 of a file, read in 1 MiB chunks.

    >>> import tempfile, os
    >>> with tempfile.NamedTemporaryFile(delete=False) as f:
    ...     _ = f.write(b"abc")
    >>> md5sum(f.name)
    '900150983cd24fb0d6963f7d28e17f72'
    >>> os.remove(f.name)
    """
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _fetch(url: str, part: Path, timeout: float, progress: bool) -> None:
    """Append the bytes of ``url`` missing from ``part`` (restart when Range is ignored)."""
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416:  # nothing left to fetch: the part file is already complete
            return
        raise
    with resp:
        if have and resp.status != 206:
            have = 0  # server ignored the Range header: start over
        length = resp.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        with (
            open(part, "ab" if have else "wb") as out,
            tqdm(
                total=total,
                initial=have,
                unit="B",
                unit_scale=True,
                desc=part.name[:-5],
                disable=not progress,
            ) as bar,
        ):
            for chunk in iter(lambda: resp.read(CHUNK), b""):
                out.write(chunk)
                bar.update(len(chunk))
                have += len(chunk)
    # http.client's read() returns b"" when the server drops the connection early, so a short
    # body is only visible by its length: keep the part file for the next call to resume.
    if total is not None and have < total:
        raise ConnectionError(
            f"download of {url} stopped after {have} of {total} bytes; the "
            f"partial file {part} is kept: run again to resume"
        )


def unreachable(url: str, timeout: float = 10.0) -> str | None:
    """``None`` if the server of ``url`` answers (any HTTP status: it is online), else why not
    (no network, DNS failure, timeout). A HEAD request: nothing is downloaded."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout):
            return None
    except urllib.error.HTTPError:  # the server answered (403, 405...): the network is there
        return None
    except (urllib.error.URLError, OSError) as err:
        return f"cannot reach {urllib.parse.urlsplit(url).netloc}: {getattr(err, 'reason', err)}"


def download_file(
    url: str, dest: str | Path, md5: str, *, timeout: float = 60.0, progress: bool = True
) -> Path:
    """Download ``url`` to ``dest`` (resuming ``dest.part``), verify ``md5``, return ``dest``.

    A finished ``dest`` is trusted as is (it was only renamed there after its md5 matched).
    Raises ChecksumError naming the URL and file when the complete download has the wrong md5
    (the bad part file is deleted so the next call starts afresh), lets urllib's URLError
    through when the server cannot be reached, and raises ConnectionError (part file kept, so
    the next call resumes) when the connection drops before the announced length arrived.
    """
    dest = Path(dest)
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    _fetch(url, part, timeout, progress)
    got = md5sum(part)
    if got != md5:
        os.remove(part)
        raise ChecksumError(
            f"checksum mismatch for {dest.name} downloaded from {url}: md5 {got}, expected {md5}. "
            f"The partial file was deleted; retry, or download it yourself and put it at {dest}."
        )
    os.replace(part, dest)
    return dest
