"""The study's trainings fanned out on dask workers (several GPUs or machines), recorded by DVC.

DVC runs the stages of a workspace one at a time (iterative/dvc#5795). This trains the runs of
every out-of-date training stage in parallel, then ``dvc repro`` runs the study as usual and each
training stage finds its finished run (same settings, code and data: rundir.py) and reuses it::

    python -m dmlstudy.execution.fanout --workers 4 [--scheduler tcp://host:8786]

1. params.yaml is checked, then ``dvc repro`` brings the stages upstream of the trainings
   (check_params, prepare@...) up to date;
2. ``dvc status --json`` over the training stages (those running notebooks/train.py,
   ablation.py, multimodal.py) names the ones ``dvc repro`` would rerun: DVC decides, not us;
3. their runs' settings, built as the stages build them (fanout_plan), are trained one per dask
   task (fanout_cluster), each with the thread count a serial ``dvc repro`` uses here;
4. ``dvc repro``; a run the stages trained again would mean differing settings: reported.
A failed run is reported at the end (which run, its root error); the stages whose runs all
finished are still recorded; relaunching resumes the rest from their checkpoints.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from dmlstudy.execution.fanout_cluster import (
    Failure,
    FanoutError,
    check_workers,
    open_client,
    train_runs,
)
from dmlstudy.execution.fanout_plan import PLANNERS, StageRuns, notebook_call, stage_runs
from dmlstudy.execution.fanout_workers import RunResult, metrics_digest
from dmlstudy.study import check_params
from dmlstudy.training.devices import visible_gpus

T = TypeVar("T")


def dvc(root: Path, *args: str, capture: bool = False) -> subprocess.CompletedProcess:
    """``dvc ARGS`` in ``root`` with this interpreter's DVC (its output shown unless captured)."""
    cmd = [sys.executable, "-m", "dvc", *args]
    return subprocess.run(cmd, cwd=root, capture_output=capture, text=True)


def stage_target(root: Path, stage: Any) -> str:
    """What ``dvc repro/status`` in ``root`` calls a DVC stage object (``name``, or
    ``<dvcfile>:name`` outside the root ``dvc.yaml``)."""
    dvcfile = Path(os.path.relpath(stage.path, root)).as_posix()
    return stage.name if dvcfile == "dvc.yaml" else f"{dvcfile}:{stage.name}"


def select_stages(
    root: Path, keep: Callable[[Any], bool], describe: Callable[[Any], T]
) -> tuple[dict[str, T], list[str]]:
    """``describe(stage)`` of each DVC stage of ``root``'s pipelines that ``keep`` selects
    (``{target: ...}``, in the index's order; read while the repo is open), and the targets of
    the other stages upstream of them (check_params, prepare@...), which ``dvc repro`` must
    bring up to date first."""
    import networkx as nx
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        chosen = {stage_target(root, s): s for s in repo.index.stages if keep(s)}
        graph = repo.index.graph  # edges point from a stage to the stages it depends on
        upstream = {
            stage_target(root, u) for s in chosen.values() for u in nx.descendants(graph, s)
        }
        described = {target: describe(s) for target, s in chosen.items()}
    return described, sorted(upstream - set(chosen))


def read_pipeline(root: Path) -> tuple[dict[str, tuple[str, Path]], list[str]]:
    """The training stages (``{name: (cmd, wdir)}``, dvc.yaml order) and the stages upstream of
    them that are not training stages themselves."""

    def training(s: Any) -> bool:
        call = notebook_call(getattr(s, "cmd", None) or "")
        return bool(call) and Path(call[0]).as_posix() in PLANNERS

    return select_stages(root, training, lambda s: (s.cmd, Path(s.wdir)))


def out_of_date(root: Path, stages: list[str]) -> list[str]:
    """The ``stages`` that ``dvc status`` reports changed (deps, outs, command or params)."""
    proc = dvc(root, "status", "--json", *stages, capture=True)
    if proc.returncode:
        raise FanoutError(f"dvc status failed:\n{proc.stdout}{proc.stderr}")
    changed = json.loads(proc.stdout or "{}")
    return [s for s in stages if s in changed]


def serial_threads() -> int:
    """torch's thread count in a fresh interpreter of this environment: what a stage's kernel
    uses. 1 and 2 threads give other last bits (benchmarks/cpu_threads_bitwise.py), so the
    fan-out keeps this count to end with a serial ``dvc repro``'s results."""
    code = "import torch; print(torch.get_num_threads())"
    return int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              check=True).stdout)  # fmt: skip


def report(failed: list[Failure], total: int) -> str:
    """The end-of-run summary of the failed runs."""
    lines = [f"{len(failed)} of {total} training run(s) failed; the others finished:"]
    for f in failed:
        lines += [f"  {f.run}", f"    root error: {f.root}"]
        lines += [f"      {line}" for line in f.details.splitlines()]
    lines.append(
        "Fix the cause and launch again: finished runs are reused, interrupted ones resume "
        "from their last checkpoint."
    )
    return "\n".join(lines)


def retrained(plans: list[StageRuns], results: list[RunResult]) -> list[str]:
    """Runs whose metrics.json changed after the fan-out trained them (the stage trained again)."""
    wdir = {p.stage: p.wdir for p in plans}
    return [r.out_dir for r in results if metrics_digest(wdir[r.stage] / r.out_dir) != r.digest]


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def train_plans(
    root: Path, plans: list[StageRuns], workers: int, scheduler: str | None, threads: int | None
) -> tuple[list[RunResult], list[Failure]]:
    """Step 3: open the cluster, check its workers, train every run of ``plans``."""
    runs = [s for p in plans for s in p.settings]
    gpus = [] if scheduler or all(s.device == "cpu" for s in runs) else visible_gpus()
    if scheduler:  # other machines: the cores each worker may use, unless told
        say(f"{workers} worker(s) at {scheduler}; CPU threads per run: {threads or 'its cores'}")
    else:
        threads = threads or serial_threads()
        gpu_note = f", one GPU each ({', '.join(gpus[:workers])})" if gpus else ""
        say(f"{workers} worker(s){gpu_note}; {threads} CPU thread(s) per run, as dvc repro")
        if not gpus and workers * threads > (os.cpu_count() or 1):
            say(
                f"note: {workers} x {threads} threads on {os.cpu_count()} cores; to split the "
                "cores set train.cpu_threads in params.yaml (other last bits: runs retrain once)"
            )
    with open_client(workers, scheduler, gpus) as client:
        check_workers(client, root)
        return train_runs(client, plans, threads)


def fanout(
    root: Path, workers: int, scheduler: str | None, params: str, threads: int | None
) -> int:
    """Steps 1-4 of the module docstring; returns the exit status."""
    if rc := check_params.main([params]):
        return rc
    training, upstream = read_pipeline(root)
    if upstream and (rc := dvc(root, "repro", *upstream).returncode):
        return rc
    stale = out_of_date(root, list(training))
    plans = [p for name in stale if (p := stage_runs(name, *training[name]))]
    n_runs = sum(len(p.settings) for p in plans)
    say(f"{len(plans)} of {len(training)} training stages out of date: {n_runs} run(s)")
    results, failed = train_plans(root, plans, workers, scheduler, threads) if n_runs else ([], [])
    if failed:
        bad = {f.stage for f in failed}
        if ok := [p.stage for p in plans if p.stage not in bad]:
            dvc(root, "repro", "--single-item", *ok)  # record the stages whose runs all finished
        say(report(failed, n_runs))
        return 1
    if rc := dvc(root, "repro").returncode:
        return rc
    if again := retrained(plans, results):
        say(
            f"ERROR: dvc repro trained again {len(again)} run(s) the fan-out had trained "
            f"({', '.join(again)}): their stages built other settings (a fanout_plan bug)"
        )
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, required=True, help="dask workers (one run each)")
    ap.add_argument("--scheduler", help="address of a running dask scheduler (tcp://host:8786)")
    ap.add_argument("--params", default="params.yaml", help="the params file dvc.yaml reads")
    ap.add_argument(
        "--threads",
        type=int,
        help="CPU threads per run (default: as dvc repro here; with --scheduler, each worker's "
        "cores)",
    )
    args = ap.parse_args(argv)
    if args.workers < 1 or (args.threads is not None and args.threads < 1):
        ap.error("--workers and --threads must be >= 1")
    try:
        return fanout(Path.cwd(), args.workers, args.scheduler, args.params, args.threads)
    except FanoutError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            "interrupted: finished runs are kept, and the next launch resumes the others from "
            "their last checkpoint",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
