"""Die with the process that started this one: no training left running as an orphan.

A stage's process chain is ``dvc repro`` → the notebook driver (:mod:`.run_notebook`, which DVC
starts through ``$SHELL -c``; bash, zsh and dash replace themselves by a simple command) → the
papermill kernel. ``kill -9`` of ``dvc repro`` alone used to leave the driver and its kernel
training on, unseen, while a rerun trained the same run folder. Now each link dies with the one
above it: the driver under DVC (``$DVC_STAGE`` set) and every kernel it starts call
:func:`die_with_parent`. On Linux that is ``prctl(PR_SET_PDEATHSIG, SIGKILL)``: the kernel
delivers the signal when the parent exits, whatever the child is doing (no polling, no GIL);
elsewhere a daemon thread polls ``getppid()``. A driver run by hand is not tied to its shell
(``nohup`` keeps working); ipykernel also polls for its parent, once a second, as a fallback.
Where ``$SHELL`` is a shell that does not exec a ``-c`` command (dash, DVC's ``/bin/sh`` when
``$SHELL`` is unset), the driver's parent is that shell, which outlives DVC; the driver then
also watches the shell's parent, twice a second.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

PR_SET_PDEATHSIG = 1
PR_GET_PDEATHSIG = 2


#: Shells that may stand between DVC and the driver without replacing themselves (dash's -c).
SHELLS = frozenset({"sh", "dash", "bash", "zsh", "ksh", "fish"})


def die_with_parent(
    parent_pid: int | None = None, sig: int = signal.SIGKILL, *, through_shell: bool = False
) -> None:
    """Have this process receive ``sig`` when its parent (``parent_pid``, default the current
    one) exits; if it has exited already, receive it now. ``through_shell``: if the parent is a
    shell (``sh -c`` that did not exec), also when the shell's own parent exits (Linux)."""
    parent = os.getppid() if parent_pid is None else parent_pid
    if through_shell and _comm(parent) in SHELLS and (above := _ppid(parent)) is not None:
        _poll(parent, sig, lambda: _ppid(parent) in (above, None))
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            _poll(parent, sig)
    else:
        _poll(parent, sig)
    if os.getppid() != parent:  # the parent died before the call: nothing will signal us
        os.kill(os.getpid(), sig)


def parent_death_signal() -> int:
    """The signal this process gets when its parent exits (0: none; Linux only)."""
    value = ctypes.c_int(0)
    ctypes.CDLL(None).prctl(PR_GET_PDEATHSIG, ctypes.byref(value), 0, 0, 0)
    return value.value


def kernel_exec_line(parent_pid: int) -> str:
    """A line for ``--IPKernelApp.exec_lines``: the kernel dies with ``parent_pid`` (the driver);
    one expression, so it leaves no name in the notebook's namespace."""
    return f"__import__({__name__!r}, fromlist=['_']).die_with_parent({int(parent_pid)})"


def _comm(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None


def _ppid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _poll(parent: int, sig: int, alive: Callable[[], bool] | None = None) -> None:
    """A daemon thread that sends ``sig`` to this process once its parent changes (or
    ``alive()`` turns false), polling twice a second."""

    def watch() -> None:
        while os.getppid() == parent and (alive is None or alive()):
            time.sleep(0.5)
        os.kill(os.getpid(), sig)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()
