"""Tune one loss on the validation split: a small grid of trainings under a dataset's protocol.

A fair comparison chooses hyper-parameters on held-out *validation* classes and never looks at
the test split (Musgrave et al., "A Metric Learning Reality Check", ECCV 2020).
This runs the Cartesian product of ``--grid`` values (loss hyper-parameters, or training
settings as ``train.<field>``), each with ``evaluate_test=False``, and prints the runs sorted by
validation MAP@R; the winner goes into ``params.yaml`` as ``losses.<loss>.per_dataset.<dataset>``::

    python -m dmlstudy.pipeline.tune params.yaml --dataset omniglot --loss proxy_anchor \\
        --prepared-dir work/prepared/omniglot --out-dir work/tuning \\
        --grid proxy_lr_multiplier=1,10,100 --grid train.pooling=avg,avgmax

Each grid point is a training run in ``<out-dir>/<dataset>/<loss>/<point>/seed<seed>/``, with the
trainer's one rule for a folder that exists (:mod:`dmlstudy.training.rundir`): a finished point
with exactly the settings, code and data asked for now is read back, not retrained; an interrupted
one resumes; one made with other settings (a params.yaml edit) is replaced, with a log line.
Values are parsed as YAML (``1e-3`` is a float).

>>> parse_grid(["margin=0.1,0.2", "train.pooling=avg"])
{'margin': [0.1, 0.2], 'train.pooling': ['avg']}
>>> grid_points({"margin": [0.1, 0.2], "train.pooling": ["avg"]})
[{'margin': 0.1, 'train.pooling': 'avg'}, {'margin': 0.2, 'train.pooling': 'avg'}]
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path
from typing import Any

import pandas as pd

from dmlstudy.pipeline.results import epochs_for_readers
from dmlstudy.pipeline.run_notebook import parse_parameters


def parse_grid(specs: list[str]) -> dict[str, list[Any]]:
    """``["key=v1,v2", ...]`` → ``{key: [v1, v2]}`` (values parsed as YAML scalars)."""
    grid: dict[str, list[Any]] = {}
    for spec in specs:
        key, sep, values = spec.partition("=")
        if not sep or not key or not values:
            raise ValueError(
                f"--grid {spec!r}: expected KEY=V1,V2,... (KEY a loss parameter or train.<field>)"
            )
        grid[key] = [parse_parameters([(key, v)])[key] for v in values.split(",")]
    return grid


def grid_points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """The Cartesian product of ``grid``, in the order the keys and values were given."""
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


def point_name(point: dict[str, Any]) -> str:
    """A folder name for one grid point, e.g. ``margin=0.1,train.pooling=avg``."""
    return ",".join(f"{k}={v}" for k, v in point.items()) or "defaults"


def tune(
    params_file: str | Path,
    dataset: str,
    loss: str,
    grid: dict[str, list[Any]],
    *,
    prepared_dir: str | Path,
    out_dir: str | Path,
    seed: int = 0,
) -> pd.DataFrame:
    """Train every grid point of ``loss`` on ``dataset`` (validation only); one row per point,
    best validation MAP@R first."""
    from dmlstudy.config import check_choice, check_loss_params, check_train_overrides, load_config
    from dmlstudy.losses import list_losses
    from dmlstudy.pipeline.runs import train_settings
    from dmlstudy.training import train

    config = load_config(params_file)
    check_choice(dataset, config.datasets, "dataset (a preset in params.yaml datasets.<name>)")
    check_choice(loss, list_losses(), "loss")
    for key, values in grid.items():  # every bad key or value fails here, before any training
        for value in values:
            if key.startswith("train."):
                check_train_overrides({key.removeprefix("train."): value}, "--grid train")
            else:
                check_loss_params(loss, {key: value}, f"--grid {loss}")
    rows = []
    for point in grid_points(grid):
        loss_params = {k: v for k, v in point.items() if not k.startswith("train.")}
        extra = {k.removeprefix("train."): v for k, v in point.items() if k.startswith("train.")}
        run_dir = Path(out_dir) / dataset / loss / point_name(point) / f"seed{seed}"
        settings = train_settings(
            config,
            dataset,
            loss,
            seed,
            prepared_dir=prepared_dir,
            out_dir=run_dir,
            loss_params=loss_params,
            extra={**extra, "evaluate_test": False},
        )
        metrics = train(settings)  # reused, resumed or replaced: dmlstudy.training.rundir
        rows.append(
            {
                **point,
                **{f"val {k}": v for k, v in metrics["val"].items()},
                "best_epoch": metrics["best_epoch"],
                "train_seconds": metrics["train_seconds"],
            }
        )
    return pd.DataFrame(rows).sort_values("val map@r", ascending=False, ignore_index=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("params_file")
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--loss", required=True)
    ap.add_argument("--prepared-dir", required=True)
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2")
    a = ap.parse_args(argv)
    table = tune(
        a.params_file,
        a.dataset,
        a.loss,
        parse_grid(a.grid),
        prepared_dir=a.prepared_dir,
        out_dir=a.out_dir,
        seed=a.seed,
    )
    out = Path(a.out_dir) / a.dataset / f"{a.loss}.csv"
    epochs_for_readers(table).to_csv(out, index=False)
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(table.round(4).to_string(index=False))
    print(f"written {out}")


if __name__ == "__main__":
    main()
