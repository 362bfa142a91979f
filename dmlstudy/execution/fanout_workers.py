"""The fan-out's side on the dask workers: one training run per task, and what a worker reports.

A task trains one run with :func:`dmlstudy.training.train` in the stage's working directory
(the settings hold the stage's relative paths) under the thread count a serial ``dvc repro``
uses. The trainer reuses a finished run and resumes an interrupted one, so a task rerun after a
killed worker continues from the run's last checkpoint. A failure becomes a
:class:`RunFailedError` that names the run and the root of the exception chain, so that the
report at the end reads the same whichever machine failed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dmlstudy.training.settings import TrainSettings

#: Traceback lines of the root error shown in the final report.
TRACEBACK_LINES = 12


class RunFailedError(RuntimeError):
    """One run's training failed: ``run`` (stage and folder), ``root`` (``Type: message`` of the
    innermost exception) and ``details`` (the last traceback lines)."""

    def __init__(self, run: str, root: str, details: str) -> None:
        super().__init__(f"{run}: {root}")
        self.run, self.root, self.details = run, root, details

    def __reduce__(self) -> tuple[Any, ...]:  # pickled back to the client with its fields
        return type(self), (self.run, self.root, self.details)


def root_cause(exc: BaseException) -> BaseException:
    """The innermost exception of a chain (``raise ... from`` or raised while handling).

    >>> try:
    ...     try:
    ...         {}["k"]
    ...     except KeyError as e:
    ...         raise ValueError("bad") from e
    ... except ValueError as e:
    ...     type(root_cause(e)).__name__
    'KeyError'
    """
    seen = {id(exc)}
    while True:
        nxt = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
        if nxt is None or id(nxt) in seen:
            return exc
        seen.add(id(nxt))
        exc = nxt


def describe(run: str, exc: BaseException) -> RunFailedError:
    """A picklable summary of ``exc`` for the run ``run``."""
    root = root_cause(exc)
    lines = "".join(traceback.format_exception(type(root), root, root.__traceback__))
    tail = lines.rstrip().splitlines()[-TRACEBACK_LINES:]
    return RunFailedError(run, f"{type(root).__name__}: {root}", "\n".join(tail))


@contextlib.contextmanager
def working_directory(path: Path) -> Iterator[None]:
    """Run inside ``path`` (the settings' paths are relative to the stage's folder)."""
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def metrics_digest(out_dir: Path) -> str | None:
    """sha256 of a run's metrics.json (None if absent): tells whether a later ``dvc repro``
    trained the run again."""
    path = Path(out_dir) / "metrics.json"
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


@dataclass(frozen=True)
class RunResult:
    """What a task sends back: the run, whether it was reused as found, its test metrics."""

    stage: str
    out_dir: str
    reused: bool
    seconds: float
    digest: str | None
    test: dict[str, float]
    host: str


def usable_cores() -> int:
    """The CPU cores this process may run on (a batch job's allocation, not the node's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def train_run(stage: str, settings: TrainSettings, wdir: str, threads: int | None) -> RunResult:
    """Train (or reuse, or resume) one run on this worker: the task of the fan-out; ``threads``
    None = the cores this worker may use."""
    import torch

    from dmlstudy.training import train

    run = f"{stage} ({settings.out_dir})"
    threads = threads or usable_cores()
    before_threads = torch.get_num_threads()
    start = time.perf_counter()
    try:
        with working_directory(Path(wdir)):
            found = metrics_digest(settings.out_dir)
            torch.set_num_threads(threads)  # settings.cpu_threads, if set, wins inside train()
            metrics = train(settings)
            digest = metrics_digest(settings.out_dir)
    except Exception as exc:
        raise describe(run, exc) from None
    finally:
        torch.set_num_threads(before_threads)
    return RunResult(
        stage=stage,
        out_dir=str(settings.out_dir),
        reused=found is not None and found == digest,
        seconds=time.perf_counter() - start,
        digest=digest,
        test=dict(metrics.get("test", {})),
        host=platform.node(),
    )


def probe(root: str) -> dict[str, Any]:
    """What a worker sees: the training code it imports (fingerprint and path), the repository
    (``root`` holds dvc.yaml: a shared file system), its CUDA devices; run on every worker
    before any task."""
    import torch

    import dmlstudy
    from dmlstudy.training.fingerprint import code_fingerprint

    return {
        "host": platform.node(),
        "code": code_fingerprint(),
        "package": str(Path(dmlstudy.__file__).parent),
        "sees_root": (Path(root) / "dvc.yaml").is_file(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "cuda_devices": torch.cuda.device_count(),
    }
