"""Headroom of the divergence rule (dmlstudy.training.divergence) on real runs of the study: trains
every loss of params.yaml on one dataset under its protocol and prints the peak |loss| and
embedding-norm ratios to their early levels, next to the thresholds that stop a run (1000× and
10000×). Prints figures; asserts nothing::

    python benchmarks/divergence_headroom.py params.yaml --dataset omniglot \\
        --data-dir data --work-dir /tmp/headroom [--losses rsw,npair] [--epochs 3]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from dmlstudy.config import load_config
from dmlstudy.data import prepare_dataset
from dmlstudy.study.runs import train_settings
from dmlstudy.training import TrainingDivergedError, train
from dmlstudy.training.divergence import LOSS_BLOWUP, NORM_BLOWUP


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("params_file")
    ap.add_argument("--dataset", default="omniglot")
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--work-dir", required=True)
    ap.add_argument("--losses", default=None, help="comma-separated; default study.losses")
    ap.add_argument("--epochs", type=int, default=None, help="override the protocol's epochs")
    a = ap.parse_args()
    config = load_config(a.params_file)
    prep = config.prepare_settings(a.dataset)
    prepared = prepare_dataset(
        a.dataset,
        a.data_dir,
        Path(a.work_dir) / "prepared",
        image_size=prep.image_size,
        val_fraction=prep.val_fraction,
        seed=prep.split_seed,
        max_classes_per_split=prep.max_classes_per_split,
        work_dir=Path(a.work_dir) / "cache",
    )
    losses = a.losses.split(",") if a.losses else config.study.losses
    print(f"thresholds: loss {LOSS_BLOWUP:g}x, norm {NORM_BLOWUP:g}x of the early level")
    for loss in losses:
        extra = {"evaluate_test": False, "progress": False}
        if a.epochs is not None:
            extra["epochs"] = a.epochs
        s = train_settings(
            config,
            a.dataset,
            loss,
            0,
            prepared_dir=prepared,
            out_dir=Path(a.work_dir) / "runs" / loss,
            extra=extra,
        )
        t0 = time.perf_counter()
        try:
            m = train(s)
        except TrainingDivergedError as err:
            print(f"{loss:18s} DIVERGED: {err}", flush=True)
            continue
        d = m["divergence"]
        steps = sum(1 for _ in m["history"]) * (s.max_steps_per_epoch or 0)
        print(
            f"{loss:18s} peak |loss| {d['peak_loss_ratio']:7.2f}x  peak norm "
            f"{d['peak_norm_ratio']:6.2f}x  (early |loss| {d['early_loss'][0]:.3g}, norm "
            f"{d['early_norm'][0]:.3g}; ~{steps} steps, val MAP@R {m['val']['map@r']:.3f}, "
            f"{time.perf_counter() - t0:.0f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
