"""What one pipeline stage costs besides its own work: interpreter and imports, kernel start,
notebook execution machinery, HTML rendering and DVC's bookkeeping.

Runs the real ``notebooks/train.py`` stage command on a tiny synthetic dataset (tiny profile: the
training itself takes a second or two) and subtracts the run's own ``wall_seconds``; the same for
the paper-grade study's stage command (``paper_study train``: no kernel, papermill or HTML); then
times the pieces one by one. Prints figures; asserts nothing::

    python benchmarks/bench_stage_overhead.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True, text=True)
    return time.perf_counter() - t


def kernel_start() -> float:
    from jupyter_client.manager import start_new_kernel

    t = time.perf_counter()
    km, kc = start_new_kernel(kernel_name="python3")
    spent = time.perf_counter() - t
    kc.stop_channels()
    km.shutdown_kernel(now=True)
    return spent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    from dmlstudy.execution.run_notebook import render_html
    from dmlstudy.training.synthetic import write_synthetic_prepared

    tmp = Path(tempfile.mkdtemp(prefix="stage_overhead_"))
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PYTHONPATH": str(REPO)}
    prepared = write_synthetic_prepared(
        tmp / "prepared",
        classes={"train": 8, "val": 4, "test": 4},
        per_class=8,
        image_size=28,
        channels=1,
    )
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["study"]["profile"] = "tiny"
    params["profiles"]["tiny"]["seeds"] = [0]  # the paper-study arm trains seed 0 under tiny
    (tmp / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    rows: dict[str, list[float]] = {}
    cells: dict[str, list[float]] = {}
    for i in range(a.repeats):
        out = tmp / f"run{i}"
        cmd = [
            PY,
            "-m",
            "dmlstudy.execution.run_notebook",
            str(REPO / "notebooks/train.py"),
            str(tmp / f"train{i}.ipynb"),
            "--html",
            str(tmp / f"train{i}.html"),
            "-p",
            "dataset",
            "omniglot",
            "-p",
            "loss",
            "contrastive",
            "-p",
            "seed",
            "0",
            "-p",
            "prepared_dir",
            str(prepared),
            "-p",
            "out_dir",
            str(out),
            "-p",
            "params_file",
            str(tmp / "params.yaml"),
        ]
        total = timed(cmd, REPO, env)
        work = json.loads((out / "metrics.json").read_text())["wall_seconds"]
        rows.setdefault("whole train stage command (tiny run)", []).append(total)
        rows.setdefault("  of which the run's own work (metrics.json wall_seconds)", []).append(
            work
        )
        rows.setdefault("  of which overhead", []).append(total - work)
        paper = [
            PY,
            "-m",
            "dmlstudy.execution.paper_study",
            "train",
            str(tmp / "params.yaml"),
            *("--profile", "tiny", "--loss", "contrastive", "--seed", "0"),
            *("--prepared-dir", str(prepared)),
            *("--results", str(tmp / f"paper{i}"), "--runs", str(tmp / f"paper_runs{i}")),
        ]
        total = timed(paper, REPO, env)
        run = tmp / f"paper_runs{i}" / "tiny" / "omniglot" / "contrastive" / "seed0"
        work = json.loads((run / "metrics.json").read_text())["wall_seconds"]
        rows.setdefault("paper-study stage command (paper_study train, no notebook)", []).append(
            total
        )
        rows.setdefault("  of which overhead (DVC's bookkeeping not included)", []).append(
            total - work
        )
        for cell_name, seconds in cell_durations(tmp / f"train{i}.ipynb"):
            cells.setdefault(cell_name, []).append(seconds)
        rows.setdefault("driver: interpreter + papermill/jupytext imports", []).append(
            timed(
                [PY, "-c", "import dmlstudy.execution.run_notebook, papermill, jupytext"], REPO, env
            )
        )
        rows.setdefault("kernel start (jupyter_client)", []).append(kernel_start())
        rows.setdefault("notebook imports (torch, dmlstudy.training, config, pandas)", []).append(
            timed([PY, "-c", "import dmlstudy.training, dmlstudy.config, pandas"], REPO, env)
            - timed([PY, "-c", "pass"], REPO, env)
        )
        t = time.perf_counter()
        render_html(tmp / f"train{i}.ipynb", tmp / f"again{i}.html")
        rows.setdefault("HTML rendering (nbconvert)", []).append(time.perf_counter() - t)
    dvc = tmp / "dvcrepo"
    dvc.mkdir()
    shutil.copytree(
        REPO / "dmlstudy", dvc / "dmlstudy", ignore=shutil.ignore_patterns("__pycache__")
    )
    make_out = f"{PY} -c \"import pathlib; pathlib.Path('out').mkdir()\""
    stage = f"stages:\n  noop:\n    cmd: {make_out}\n    deps: [dmlstudy]\n    outs: [out]\n"
    (dvc / "dvc.yaml").write_text(stage)
    for c in (["git", "init", "-q"], [str(Path(PY).parent / "dvc"), "init", "-q"]):
        subprocess.run(c, cwd=dvc, env=env, check=True, capture_output=True)
    dvc_cmd = [str(Path(PY).parent / "dvc"), "repro", "-f", "-q"]
    for _ in range(a.repeats):
        rows.setdefault("dvc repro of a no-work stage (dmlstudy/ dep, one out)", []).append(
            timed(dvc_cmd, dvc, env)
        )
    print(f"load average {os.getloadavg()[0]:.1f}; median of {a.repeats} (seconds)")
    for name, values in rows.items():
        print(f"{statistics.median(values):7.2f}  {name}")
    print("the stage's notebook, cell by cell (papermill's durations; the training cell included):")
    for name, values in sorted(cells.items(), key=lambda kv: -statistics.median(kv[1]))[:8]:
        print(f"{statistics.median(values):7.2f}  {name}")
    shutil.rmtree(tmp, ignore_errors=True)


def cell_durations(notebook: Path) -> list[tuple[str, float]]:
    """(cell number and first code line, seconds) of each code cell papermill executed."""
    cells = json.loads(notebook.read_text())["cells"]
    out = []
    for i, cell in enumerate(cells):
        seconds = cell.get("metadata", {}).get("papermill", {}).get("duration")
        if cell["cell_type"] == "code" and seconds is not None:
            src = "".join(cell["source"]).strip().splitlines() or [""]
            out.append((f"cell {i}: {src[0][:70]}", float(seconds)))
    return out


if __name__ == "__main__":
    main()
