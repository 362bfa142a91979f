"""One training run over several processes: ``torchrun`` + DistributedDataParallel
(:mod:`dmlstudy.training.distributed`), on the run folder the pipeline's train stage uses, so it
resumes there, and ``dvc repro`` later reuses the finished run (same settings, code and data)::

    torchrun --nproc-per-node 8 -m dmlstudy.execution.ddp_train params.yaml \\
        --dataset sop --loss proxy_anchor --seed 0
    torchrun --nproc-per-node 2 -m dmlstudy.execution.ddp_train --settings a.json [b.json ...]

Settings come from ``params.yaml`` exactly as in the train stage (``study.runs.train_settings``)
or from ``TrainSettings`` JSON files (trained one after the other in one launch). Rank 0 prints
``{out_dir: summary of metrics.json}``.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from dmlstudy.training import TrainSettings, train
from dmlstudy.training.distributed import process_group
from dmlstudy.training.inference import resolve_device


def settings_from_args(a: argparse.Namespace) -> list[TrainSettings]:
    """The runs' settings: ``--settings`` JSON files, or params.yaml + dataset + loss + seed."""
    if a.settings:
        if a.params_file is not None:
            raise SystemExit("give either params.yaml or --settings, not both")
        return [TrainSettings.model_validate_json(Path(p).read_text()) for p in a.settings]
    if a.params_file is None or a.dataset is None or a.loss is None:
        raise SystemExit("give params.yaml with --dataset and --loss, or --settings run.json")
    from dmlstudy.config import load_config
    from dmlstudy.study.runs import train_settings
    from dmlstudy.training.rundir import run_path

    config = load_config(a.params_file)
    return [
        train_settings(
            config,
            a.dataset,
            a.loss,
            a.seed,
            prepared_dir=a.prepared_dir or Path("work/prepared") / a.dataset,
            out_dir=a.out_dir or run_path(Path("work/runs") / a.dataset, a.loss, a.seed),
        )
    ]


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("params_file", nargs="?", help="params.yaml")
    ap.add_argument("--dataset")
    ap.add_argument("--loss")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--prepared-dir", type=Path, help="default work/prepared/<dataset> (dvc.yaml)")
    ap.add_argument(
        "--out-dir", type=Path, help="default work/runs/<dataset>/<loss>/seed<seed> (dvc.yaml)"
    )
    ap.add_argument("--settings", type=Path, nargs="+", help="TrainSettings JSON file(s) instead")
    return ap


def main(argv: list[str] | None = None) -> dict[str, dict]:
    runs = settings_from_args(parser().parse_args(argv))
    devices = {resolve_device(s.device) for s in runs}
    if len(devices) > 1:
        raise SystemExit(
            f"the runs of one launch must share a device, got {sorted(map(str, devices))}"
        )
    keep = ("best_epoch", "epochs_run", "val", "test", "train_images_per_s", "device")
    done = {}
    with process_group(devices.pop()) as ranks:
        logging.basicConfig(level=logging.INFO if ranks.main else logging.WARNING)
        for s in runs:
            metrics = train(s)
            done[str(s.out_dir)] = {k: metrics.get(k) for k in keep}
    if ranks.main:
        print(json.dumps(done, indent=1))
    return done


if __name__ == "__main__":
    main()
