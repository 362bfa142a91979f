"""Are the study's CPU trainings bit-identical under 1 and 2 intra-op threads?

The fan-out (dmlstudy.execution.fanout) may only give each worker a share of the cores if the
thread count does not change a run's result. For every study loss this trains the run
params.yaml defines (``--profile``, every budget capped by ``--epochs`` / ``--steps``) once per
thread count and compares the training losses, validation metrics, test metrics and embeddings
bit for bit. Prints one line per loss and a verdict; asserts nothing::

    python benchmarks/cpu_threads_bitwise.py --profile full --epochs 2 --steps 8
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from dmlstudy.config import load_config
from dmlstudy.data import prepare_dataset
from dmlstudy.study.runs import train_settings
from dmlstudy.training import train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--profile", default="full")
    ap.add_argument("--dataset", default="omniglot")
    ap.add_argument("--losses", nargs="*", help="default: study.losses")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--steps", type=int, default=8, help="max_steps_per_epoch")
    ap.add_argument("--limit-eval", type=int, default=2000)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--work-dir", default=os.path.join(tempfile.gettempdir(), "dmlstudy_threads"))
    a = ap.parse_args()
    config = load_config(a.params)
    config = config.model_copy(
        update={"study": config.study.model_copy(update={"profile": a.profile})}
    )
    prep = config.prepare_settings(a.dataset)
    work = Path(a.work_dir)
    prepared = prepare_dataset(
        a.dataset,
        config.data_dir(),
        work / f"prepared-{a.profile}",
        image_size=prep.image_size,
        val_fraction=prep.val_fraction,
        val_by=prep.val_by,
        seed=prep.split_seed,
        max_classes_per_split=prep.max_classes_per_split,
        work_dir=config.data.work_dir,
    )
    cap = {"epochs": a.epochs, "max_steps_per_epoch": a.steps, "limit_eval": a.limit_eval}
    same_all = True
    for loss in a.losses or config.study.losses:
        runs, seconds = [], []
        for n in a.threads:
            s = train_settings(
                config,
                a.dataset,
                loss,
                0,
                prepared_dir=prepared,
                out_dir=work / f"{a.profile}-{loss}-t{n}",
                extra={**cap, "cpu_threads": n, "device": "cpu"},
            )
            start = time.perf_counter()
            m = train(s)
            seconds.append(time.perf_counter() - start)
            emb = {
                x: np.load(s.out_dir / f"embeddings_{x}.npz")["embeddings"] for x in ("val", "test")
            }
            runs.append((m, emb))
        (m0, e0), same = runs[0], True
        for m, e in runs[1:]:
            same &= [h["loss"] for h in m["history"]] == [h["loss"] for h in m0["history"]]
            same &= [h.get("val") for h in m["history"]] == [h.get("val") for h in m0["history"]]
            same &= m["test"] == m0["test"]
            same &= all(np.array_equal(e[x], e0[x]) for x in e0)
        same_all &= same
        times = ", ".join(f"{n} threads {t:.1f} s" for n, t in zip(a.threads, seconds))
        print(f"{loss:18s} {'bit-identical' if same else 'DIFFERENT':14s} ({times})", flush=True)
    load = os.getloadavg()[0]
    print(
        f"verdict ({a.profile} profile, {a.epochs} epochs x {a.steps} steps, threads {a.threads}, "
        f"load average {load:.1f}): {'all bit-identical' if same_all else 'results DIFFER'}"
    )


if __name__ == "__main__":
    main()
