"""Wall time of ``python -m dmlstudy.execution.fanout`` with 1 and 2 dask workers, side by side.

A copy of this checkout's pipeline with the given profile/losses is prepared once (``dvc repro``
of check_params and prepare); each measurement runs the fan-out on a fresh copy of it, so every
training stage is out of date. Prints, per worker count, the whole launch (trainings + the
``dvc repro`` that records them) and the training phase alone (first to last progress line),
then the ratios. Asserts nothing::

    python benchmarks/fanout_speedup.py --workers 1 2 --repeat 2
    python benchmarks/fanout_speedup.py --cpu-threads 1   # train.cpu_threads: 1 (split cores)
    python benchmarks/fanout_speedup.py --cpu-threads 1 --set max_steps_per_epoch=40  # longer runs
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
COPY = ["dmlstudy", "notebooks", "dvc.yaml", "params.yaml", "dvc_plots", ".dvcignore", ".gitignore"]


def base_repo(work: Path, a: argparse.Namespace, env: dict[str, str]) -> Path:
    repo = work / "base"
    repo.mkdir(parents=True)
    for name in COPY:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, repo / name)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["study"].update(
        losses=a.losses, seeds=a.seeds, profile=a.profile, ablations=a.ablations,
        multimodal=a.multimodal,
    )  # fmt: skip
    if a.cpu_threads:
        params["train"]["cpu_threads"] = a.cpu_threads
    for key, value in (kv.split("=", 1) for kv in a.set):  # a longer budget than the profile's
        params["profiles"][a.profile].setdefault("train", {})[key] = yaml.safe_load(value)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git = ["git", "-c", "user.name=b", "-c", "user.email=b@b"]
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], [*git, "commit", "-qm", "bench"]):
        subprocess.run(cmd, cwd=repo, env=env, check=True)
    dvc = [sys.executable, "-m", "dvc"]
    subprocess.run([*dvc, "init", "-q"], cwd=repo, env=env, check=True)
    subprocess.run([*dvc, "repro", "-q", "check_params", "prepare"], cwd=repo, env=env, check=True)
    return repo


def launch(repo: Path, workers: int, env: dict[str, str]) -> tuple[float, float, int]:
    """(whole launch, training phase, runs) of one fan-out, in seconds."""
    cmd = [sys.executable, "-m", "dmlstudy.execution.fanout", "--workers", str(workers)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=repo, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip
    phase_start = phase_end = None
    runs = 0
    for line in proc.stdout:  # type: ignore[union-attr]
        now = time.perf_counter()
        if re.match(r"\d+ worker\(s\)", line):
            phase_start = now
        if m := re.match(r"\[(\d+)/(\d+)\]", line):
            phase_end, runs = now, int(m.group(2))
    if proc.wait():
        raise SystemExit(f"fan-out with {workers} worker(s) failed in {repo}")
    total = time.perf_counter() - start
    return total, (phase_end or start) - (phase_start or start), runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeat", type=int, default=1, help="rounds (alternating the order)")
    ap.add_argument("--profile", default="tiny")
    ap.add_argument("--losses", nargs="+", default=["contrastive", "triplet", "rsw", "cosface"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--ablations", nargs="*", default=["m_per_class"])
    ap.add_argument("--multimodal", nargs="*", default=["omniglot"])
    ap.add_argument("--cpu-threads", type=int, help="set train.cpu_threads (default: unset)")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="profiles.<profile>.train override, e.g. --set max_steps_per_epoch=40",
    )
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fanout_bench_"))
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "MPLBACKEND": "Agg"}
    env["DMLSTUDY_WORK_DIR"] = env.get("DMLSTUDY_WORK_DIR", str(work / "cache"))
    base = base_repo(work, a, env)
    times: dict[int, list[tuple[float, float]]] = {n: [] for n in a.workers}
    for r in range(a.repeat):
        for n in a.workers if r % 2 == 0 else a.workers[::-1]:
            repo = work / f"w{n}-r{r}"
            shutil.copytree(base, repo, symlinks=True)
            total, phase, runs = launch(repo, n, env)
            times[n].append((total, phase))
            print(f"{n} worker(s), round {r}: {runs} runs; training phase {phase:.1f} s, "
                  f"whole launch {total:.1f} s", flush=True)  # fmt: skip
            shutil.rmtree(repo)
    mean = {n: [sum(x) / len(x) for x in zip(*v)] for n, v in times.items()}
    one = a.workers[0]
    for n in a.workers[1:]:
        print(f"{n} vs {one} worker(s): training phase {mean[n][1] / mean[one][1]:.2f}x the time, "
              f"whole launch {mean[n][0] / mean[one][0]:.2f}x")  # fmt: skip
    print(f"profile {a.profile} {a.set}, cpu_threads {a.cpu_threads or 'unset (as dvc repro)'}, "
          f"{os.cpu_count()} cores, load average now {os.getloadavg()[0]:.1f}")  # fmt: skip
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
