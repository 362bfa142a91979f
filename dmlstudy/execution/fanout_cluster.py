"""The fan-out's dask side: a cluster (local processes, one GPU each, or any scheduler address),
a check of what every worker sees, and the runs trained as one task each.

dask.distributed does the scheduling, the restart of a killed worker and the retry of its task
(``distributed.scheduler.allowed-failures`` times; the retried run resumes from its checkpoint).
Local workers are processes with one thread each and no memory limit (a serial run has none),
started with this process's environment unchanged: dask's default ``pre-spawn-environ`` would
set ``OMP_NUM_THREADS=1`` in them, and in this process (the later ``dvc repro``).
"""

from __future__ import annotations

import contextlib
import sys
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from dmlstudy.execution.fanout_plan import StageRuns
from dmlstudy.execution.fanout_workers import RunFailedError, RunResult, probe, train_run
from dmlstudy.training.fingerprint import code_fingerprint


class FanoutError(RuntimeError):
    """The fan-out cannot start (workers, GPUs, code): nothing was trained."""


def worker_envs(n_workers: int, gpus: Sequence[str]) -> list[dict[str, str]]:
    """One GPU per worker (``CUDA_VISIBLE_DEVICES``), or nothing on a CPU-only machine.

    >>> worker_envs(2, ["0", "1", "2"])
    [{'CUDA_VISIBLE_DEVICES': '0'}, {'CUDA_VISIBLE_DEVICES': '1'}]
    >>> worker_envs(2, [])
    [{}, {}]
    """
    if gpus and n_workers > len(gpus):
        raise FanoutError(
            f"--workers {n_workers} on a machine with {len(gpus)} visible GPU(s): the fan-out "
            f"gives each worker one GPU; use --workers {len(gpus)} (or --scheduler to add machines)"
        )
    return [{"CUDA_VISIBLE_DEVICES": gpus[i]} if gpus else {} for i in range(n_workers)]


@contextlib.contextmanager
def open_client(n_workers: int, scheduler: str | None, gpus: Sequence[str]) -> Iterator[object]:
    """A dask Client with at least ``n_workers`` workers: local processes (one per GPU when
    ``gpus``), or the cluster behind ``scheduler`` (waits until that many workers joined)."""
    import dask
    from distributed import Client, LocalCluster

    if scheduler:
        with Client(scheduler) as client:
            print(f"waiting for {n_workers} worker(s) at {scheduler}", file=sys.stderr, flush=True)
            client.wait_for_workers(n_workers)
            yield client
        return
    envs = worker_envs(n_workers, gpus)
    with dask.config.set({"distributed.nanny.pre-spawn-environ": {}}):
        cluster = LocalCluster(
            n_workers=0, threads_per_worker=1, processes=True, memory_limit=0,
            dashboard_address=":0",  # any free port: the scheduler's HTTP server starts anyway
        )  # fmt: skip
        with cluster, Client(cluster) as client:
            spec = cluster.new_spec
            for i, env in enumerate(envs):
                cluster.worker_spec[i] = {**spec, "options": {**spec["options"], "env": env}}
            cluster.scale(n_workers)
            client.wait_for_workers(n_workers)
            yield client


def check_workers(client: object, root: Path) -> dict[str, dict]:
    """Every worker sees the repository and imports the same training code as this process
    (else a stage would not reuse the runs it trained); returns what each worker reported."""
    seen: dict[str, dict] = client.run(probe, str(root))  # type: ignore[attr-defined]
    mine = code_fingerprint()
    for address, info in seen.items():
        where = f"worker {address} on {info['host']}"
        if not info["sees_root"]:
            raise FanoutError(
                f"{where} cannot see the repository at {root}: workers must share this "
                "checkout's file system (they write the run folders there)"
            )
        if info["code"] != mine:
            raise FanoutError(
                f"{where} imports dmlstudy from {info['package']}, whose training code "
                f"(fingerprint {info['code']}) differs from this checkout's ({mine}): start the "
                f"workers with this checkout's code (PYTHONPATH={root})"
            )
    return seen


@dataclass(frozen=True)
class Failure:
    """A run that did not finish: its stage, which run, the root error, the last traceback
    lines."""

    stage: str
    run: str
    root: str
    details: str = ""


def failure(stage: str, run: str, exc: BaseException) -> Failure:
    """What to report for the run ``run`` of ``stage`` whose task raised ``exc`` (in the
    training, or in dask)."""
    if isinstance(exc, RunFailedError):
        return Failure(stage, exc.run, exc.root, exc.details)
    from distributed.scheduler import KilledWorker

    if isinstance(exc, KilledWorker):
        return Failure(
            stage,
            run,
            "the worker training it died every time it was retried (killed, or out of memory); "
            "its last checkpoint is kept and the next launch resumes from it",
        )
    return Failure(stage, run, f"{type(exc).__name__}: {exc}")


def train_runs(
    client: object, stages: Sequence[StageRuns], threads: int | None
) -> tuple[list[RunResult], list[Failure]]:
    """Train every run of ``stages``, one task each; a failure does not stop the others."""
    from distributed import as_completed

    futures = {}
    for st in stages:
        for s in st.settings:
            label = f"{st.stage} ({s.out_dir})"
            fut = client.submit(  # type: ignore[attr-defined]
                train_run, st.stage, s, str(st.wdir), threads, key=f"{label} {uuid.uuid4().hex}"
            )  # a fresh key: a task of an earlier call under the same key would be reused
            futures[fut] = (st.stage, label)
    done: list[RunResult] = []
    failed: list[Failure] = []
    for i, fut in enumerate(as_completed(futures), 1):
        if fut.status == "finished":
            r: RunResult = fut.result()
            done.append(r)
            status = f"{'reused' if r.reused else 'trained'} in {r.seconds:.1f} s on {r.host}"
        else:  # "error", or "cancelled" when the cluster went away
            try:
                exc = fut.exception()
            except BaseException as cancelled:
                exc = cancelled
            failed.append(failure(*futures[fut], exc))
            status = f"FAILED: {failed[-1].root}"
        print(f"[{i}/{len(futures)}] {futures[fut][1]}: {status}", file=sys.stderr, flush=True)
    return done, failed
