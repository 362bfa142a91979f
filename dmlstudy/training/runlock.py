"""One trainer per run folder: :func:`run_lock` holds an exclusive ``flock`` on ``<run>/.lock``
for the whole training; a second trainer of the same folder fails at once, naming the holder.

Two trainers on one folder (e.g. a kernel orphaned by a killed ``dvc repro`` and the rerun)
would write the same checkpoints and dvclive rows in turn. The lock is the kernel's: it is
released when its process dies, however it dies (``kill -9`` included), so a stale lock never
blocks. The lock file holds its holder (pid, host, start time, DVC stage) for the error message.

Why in the folder, and removed on release: the run folder is a ``persist: true`` DVC output
that DVC hashes only after the stage's command has succeeded, by which time the file is gone;
next to the folder (``<run>.lock``) it would sit inside the evaluate stage's dependency
(``work/runs/<dataset>``) or an ablation's output, which prunes what is not a run. A file left
by a killed trainer is taken over by the next one and removed when it ends. It is not a run
file (:data:`.rundir.RUN_FILES`): nothing counts it as a run's output or a stray.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import json
import os
import platform
from collections.abc import Iterator
from pathlib import Path
from typing import Any

LOCK_NAME = ".lock"


class RunLockedError(RuntimeError):
    """Another process is training the same run folder."""


@contextlib.contextmanager
def run_lock(out_dir: str | Path) -> Iterator[Path]:
    """Hold ``out_dir``'s training lock inside (the folder is created); raise
    :class:`RunLockedError` at once if another process holds it."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / LOCK_NAME
    fd = _acquire(path, out_dir)
    try:
        holder = {
            "pid": os.getpid(),
            "host": platform.node(),
            "started": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
            "stage": os.environ.get("DVC_STAGE"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        yield path
    finally:
        # removed while still locked: a trainer that opened this file meanwhile gets the lock
        # once it is closed, sees that the path no longer names it, and locks a fresh one
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        os.close(fd)


def _acquire(path: Path, out_dir: Path) -> int:
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                os.close(fd)
                raise
            holder = _read_holder(fd)
            os.close(fd)
            raise RunLockedError(locked_message(out_dir, holder)) from None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # its holder removed it as we locked it: lock the file now at the path


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        holder = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except ValueError:
        return {}
    return holder if isinstance(holder, dict) else {}


def locked_message(out_dir: Path, holder: dict[str, Any]) -> str:
    """The error of a second trainer: who holds ``out_dir`` and what to do.

    >>> m = locked_message(Path("work/runs/a/seed0"), {"pid": 7, "host": "h",
    ...                    "started": "2026-01-01 10:00:00 UTC", "stage": "train@a-0"})
    >>> m[:78]
    'work/runs/a/seed0 is being trained by another process (pid 7 on h, since 2026-'
    >>> "dvc stage train@a-0" in m and "(`kill 7` on h)" in m
    True
    """
    pid = holder.get("pid")
    if pid is None:
        who = "another process (it has not recorded itself yet)"
        stop = "stop it"
    else:
        where = f" on {holder['host']}" if holder.get("host") else ""
        since = f", since {holder['started']}" if holder.get("started") else ""
        stage = f", dvc stage {holder['stage']}" if holder.get("stage") else ""
        who = f"another process (pid {pid}{where}{since}{stage})"
        stop = f"stop it (`kill {pid}`{where})"
    return (
        f"{out_dir} is being trained by {who}; two trainers on one run folder would overwrite "
        "each other's checkpoints, so this one stopped before touching it. Wait for that "
        f"training to finish, or {stop}: it resumes from its last checkpoint when run again"
    )
