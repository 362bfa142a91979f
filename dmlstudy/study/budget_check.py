"""Budget check (protocol v2, issue #15): would a longer budget have changed a loss's result?

``python -m dmlstudy.study.budget_check [params.yaml] [--dataset omniglot] [--seed 0]
[--profile paper]`` retrains, for every loss of ``study.losses``, one seed of the main comparison
(``work/runs/<dataset>/<loss>/seed<seed>``) — with ``--profile paper``, every loss of the
paper-grade study, from its committed compact folder (``studies/paper/results/runs/paper/...``;
the CSV then goes to ``studies/paper/results/checks/<dataset>/``, outside the folder the
paper study's report stage rewrites) — to twice its stop epoch, past the
study's cap if need be (the point is to train longer on purpose), with the plateau rule's stop
disabled (``plateau_stop: false``) and every other setting as the main run's ``metrics.json``
stores it. Same seed, deterministic training and a plateau schedule that reads only the lr drops
taken make it the main run, epoch for epoch, up to the stop (the ``same_until_stop`` column checks
it); after the stop it trains on at the run's final lr (after its last drop), selecting its best
raw val MAP@R epoch as the main run does. Run folders:
``work/budget_check/<dataset>/<loss>/seed<seed>`` (resumable and reused as every run folder,
:mod:`dmlstudy.training.rundir`), so an interrupted check continues where it stopped.

It writes ``results/<dataset>/budget_check.csv`` (percent), one row per loss: the main run's stop
epoch, the epochs of the extension, val MAP@R selected at the stop and the best of the extension,
the gain, the extended run's test MAP@R and the main run's class-bootstrap 95% interval
(``results/<dataset>/table.csv``). A loss *passes* when the gain is at most ``GAIN_LIMIT`` (0.5
points) and its extended test MAP@R lies inside that interval. A run that hit the cap was not
stopped by the rule: nothing to extend, it fails ("not converged").

Cost on the 2-core machine: the extension retrains from scratch to ``2 x stop`` epochs, about
twice the main comparison's training time (README, protocol).

>>> extension_epochs(18), extension_epochs(70)
(36, 140)
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from dmlstudy.training.settings import TrainSettings

log = logging.getLogger(__name__)

#: Largest val MAP@R gain (points) a longer budget may bring for the check to pass.
GAIN_LIMIT = 0.5
METRIC = "map@r"
CSV_NAME = "budget_check.csv"
#: the paper-grade study's check goes to ``<its results>/checks/<dataset>/``: ``<dataset>/`` is its
#: report stage's output, which DVC removes before the stage runs again
CHECKS = "checks"
COLUMNS = [
    "loss", "seed", "stop_epoch", "converged", "extended_to", "val_at_stop",
    "val_best_extended", "best_epoch_extended", "gain", "same_until_stop", "test_main",
    "test_extended", "ci_low", "ci_high", "inside_ci", "passed", "note",
]  # fmt: skip


def extension_epochs(stop_epoch: int) -> int:
    """Epochs of the extended run: twice the stop epoch (the study's cap does not bound it: a
    run stopped at 70 of 100 would otherwise be checked over only 30 more epochs)."""
    return 2 * stop_epoch


def extension_settings(main: TrainSettings, stop_epoch: int, out_dir: str | Path) -> TrainSettings:
    """The main run's settings, to :func:`extension_epochs` without the plateau stop, in
    ``out_dir``."""
    values = main.model_dump()
    values.update(
        out_dir=Path(out_dir),
        epochs=extension_epochs(stop_epoch),
        plateau_stop=False,
    )
    return TrainSettings(**values)


def _val_curve(metrics: dict[str, Any]) -> dict[int, float]:
    """``{1-based epoch: val MAP@R in percent}`` of a run's history."""
    return {
        r["epoch"] + 1: 100 * r["val"][METRIC] for r in metrics.get("history", []) if "val" in r
    }


def check_loss(
    main: TrainSettings,
    main_metrics: dict[str, Any],
    interval: tuple[float, float],
    out_dir: str | Path,
    train: Callable[[TrainSettings], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One row of the check: extend the main run (settings ``main``, its ``metrics.json``) into
    ``out_dir`` and compare with the main run's class-bootstrap ``interval`` (percent)."""
    if train is None:
        from dmlstudy.training import train
    stop = int(main_metrics["epochs_run"])
    row: dict[str, Any] = {
        "loss": main.loss,
        "seed": main.seed,
        "stop_epoch": stop,
        "converged": bool(main_metrics.get("converged", False)),
        "test_main": 100 * main_metrics["test"][METRIC],
        "ci_low": interval[0],
        "ci_high": interval[1],
    }
    if stop >= main.epochs:
        return {
            **row,
            "extended_to": stop,
            "passed": False,
            "note": "not converged (the rule did not stop it before the cap): nothing to extend",
        }
    ext = train(extension_settings(main, stop, out_dir))
    curve, main_curve = _val_curve(ext), _val_curve(main_metrics)
    at_stop = max(v for e, v in curve.items() if e <= stop)
    best_epoch = max(curve, key=lambda e: (curve[e], -e))
    test_ext = 100 * ext["test"][METRIC]
    inside = interval[0] <= test_ext <= interval[1]
    gain = curve[best_epoch] - at_stop
    return {
        **row,
        "extended_to": int(ext["epochs_run"]),
        "val_at_stop": at_stop,
        "val_best_extended": curve[best_epoch],
        "best_epoch_extended": best_epoch,
        "gain": gain,
        "same_until_stop": all(
            abs(curve.get(e, float("nan")) - v) < 1e-6 for e, v in main_curve.items()
        ),
        "test_extended": test_ext,
        "inside_ci": inside,
        "passed": gain <= GAIN_LIMIT and inside,
        "note": "",
    }


def check_sentence(
    table: pd.DataFrame | None, csv_path: str | Path, expected: Sequence[str] | None = None
) -> str:
    """The reports' sentence on the check (``table`` None: not run yet); ``expected``: the
    study's losses, those without a row named as not checked yet.

    >>> check_sentence(None, "results/x/budget_check.csv")[:44]
    'Budget check: not run yet (no results/x/budg'
    >>> t = pd.DataFrame({"loss": ["a", "b"], "passed": [True, False], "gain": [0.1, 0.9],
    ...                   "inside_ci": [True, True]})
    >>> check_sentence(t, "c.csv")[:37], check_sentence(t, "c.csv")[-9:]
    ('Budget check: 1 of 2 losses pass (a l', ' fail: b.')
    >>> check_sentence(t, "c.csv", ["a", "b", "c"])[-42:]
    'fail: b. Not checked yet: c (1 of 3 left).'
    """
    if table is None:
        return (
            f"Budget check: not run yet (no {Path(csv_path).as_posix()}; "
            "`python -m dmlstudy.study.budget_check` retrains each loss to twice its stop "
            "epoch and writes it)."
        )
    failed = table.loc[~table["passed"].astype(bool), "loss"].tolist()
    sentence = (
        f"Budget check: {len(table) - len(failed)} of {len(table)} losses pass (a longer budget "
        f"gains at most {GAIN_LIMIT} points of val MAP@R and test MAP@R stays inside the main "
        "run's class-bootstrap interval)" + (f"; fail: {', '.join(failed)}." if failed else ".")
    )
    if left := [loss for loss in expected or [] if loss not in set(table["loss"])]:
        sentence += (
            f" Not checked yet: {', '.join(left)} ({len(left)} of {len(expected or [])} left)."
        )
    return sentence


def read_check(
    folder: str | Path, expected: Sequence[str] | None = None
) -> tuple[str, pd.DataFrame | None]:
    """(sentence, table or None) for the reports, from ``folder/budget_check.csv``
    (``expected``: :func:`check_sentence`)."""
    path = Path(folder) / CSV_NAME
    table = pd.read_csv(path) if path.is_file() else None
    return check_sentence(table, path, expected), table


def check_cell(folder: str | Path, expected: Sequence[str] | None = None) -> list[object]:
    """What a report page shows for the check in ``folder``: its sentence (Markdown) and, where
    the CSV exists, :func:`display_check`'s table, for ``display(*check_cell(...))``."""
    from IPython.display import Markdown  # the report notebooks' display type

    sentence, table = read_check(folder, expected)
    return [Markdown(sentence)] + ([] if table is None else [display_check(table)])


def display_check(table: pd.DataFrame) -> pd.DataFrame:
    """The check as a reader reads it: one row per loss (percent), the main run's stop and test
    MAP@R with its interval beside the extended run's, and whether it passes."""
    out = pd.DataFrame(index=pd.Index(table["loss"], name="loss"))
    out["stopped at"] = table["stop_epoch"].to_numpy()
    out["extended to"] = table["extended_to"].to_numpy()
    out["val MAP@R at stop"] = table["val_at_stop"].round(2).to_numpy()
    out["best extended (epoch)"] = [
        "" if pd.isna(v) else f"{v:.2f} ({int(e)})"
        for v, e in zip(table["val_best_extended"], table["best_epoch_extended"], strict=True)
    ]
    out["val gain"] = table["gain"].round(2).to_numpy()
    out["same epochs up to stop"] = table["same_until_stop"].to_numpy()
    out["test MAP@R main [95% CI]"] = [
        f"{m:.1f} [{lo:.1f}, {hi:.1f}]"
        for m, lo, hi in zip(table["test_main"], table["ci_low"], table["ci_high"], strict=True)
    ]
    out["test MAP@R extended"] = table["test_extended"].round(1).to_numpy()
    out["passes"] = table["passed"].astype(bool).map({True: "yes", False: "no"}).to_numpy()
    return out


def write_check(rows: list[dict[str, Any]], results_dir: str | Path) -> Path:
    path = Path(results_dir) / CSV_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(rows).reindex(columns=COLUMNS)
    frame.round(4).to_csv(path, index=False)
    return path


def main_interval(table_csv: str | Path, loss: str) -> tuple[float, float]:
    """The main table's class-bootstrap 95% interval of test MAP@R (percent) for ``loss``."""
    table = pd.read_csv(table_csv).set_index("loss")
    return float(table.loc[loss, f"{METRIC}_low"]), float(table.loc[loss, f"{METRIC}_high"])


def paper_interval(compact: str | Path) -> tuple[float, float]:
    """The class-bootstrap 95% interval of test MAP@R (percent) of one committed paper-grade run,
    from its compact folder's per-query AP@R (the interval a one-seed table gives it)."""
    from dmlstudy.analysis.compact import load_per_query
    from dmlstudy.evaluation.significance import class_bootstrap

    pq = load_per_query(compact)
    _, lo, hi = class_bootstrap(100 * pq[METRIC], pq["labels"])
    return lo, hi


def study_losses(config: Any, profile: str | None) -> list[str]:
    """The losses the check covers: ``study.losses``, or those of a profile's study."""
    return (config if profile is None else config.for_profile(profile)).study.losses


def main_metrics(
    dataset: str, seed: int, profile: str | None, work: Path, results: Path, loss: str
) -> tuple[dict[str, Any], Path]:
    """A loss's main run: its ``metrics.json`` and its folder (``work/runs/...``, or with a
    profile the committed compact folder under ``results``: :func:`main_runs`)."""
    from dmlstudy.study.paper import main_dir
    from dmlstudy.training.rundir import run_path

    if profile is None:
        folder = run_path(work / "runs" / dataset, loss, seed)
    else:
        folder = main_dir(results / "runs", profile, dataset, loss, seed)
        if not (folder / "metrics.json").is_file():
            raise FileNotFoundError(
                f"{folder} is not committed: the paper-grade study has not trained {loss} on "
                f"seed {seed} yet (make paper)"
            )
    return json.loads((folder / "metrics.json").read_text()), folder


def main_runs(
    config: Any,
    dataset: str,
    seed: int,
    profile: str | None,
    work: Path,
    results: Path,
    losses: list[str] | None = None,
) -> tuple[list[tuple[str, dict[str, Any], tuple[float, float], Path]], Path]:
    """``([(loss, main metrics.json, interval, extension folder)], results folder)``.

    ``profile`` None: the default pipeline's runs (``study.losses``, ``work/runs``, the interval
    from ``<results>/<dataset>/table.csv``). A profile (``paper``): that study's losses from the
    committed compact folders under ``results`` (the paper study's, ``studies/paper/results``:
    ``runs/<profile>/...``, settings and validation curve in their ``metrics.json``), so a fresh
    clone checks every loss without its runs. ``losses``: only these (of the study's)."""
    from dmlstudy.study.paper import main_dir
    from dmlstudy.training.rundir import run_path

    study = study_losses(config, profile)
    if unknown := sorted(set(losses or []) - set(study)):
        raise ValueError(f"--loss {', '.join(unknown)}: not a loss of the study; one of {study}")
    out = []
    for loss in [loss for loss in study if losses is None or loss in losses]:
        metrics, folder = main_metrics(dataset, seed, profile, work, results, loss)
        if profile is None:
            interval = main_interval(results / dataset / "table.csv", loss)
            ext = run_path(work / "budget_check" / dataset, loss, seed)
        else:
            interval = paper_interval(folder)
            ext = main_dir(work / "budget_check", profile, dataset, loss, seed)
        out.append((loss, metrics, interval, ext))
    # a profile's check not in results/<dataset>: that is its report stage's output
    return out, results / dataset if profile is None else results / CHECKS / dataset


def run(
    params_file: str | Path = "params.yaml",
    dataset: str | None = None,
    seed: int | None = None,
    work: str | Path = "work",
    results: str | Path | None = None,
    profile: str | None = None,
    workers: int | None = None,
    losses: list[str] | None = None,
) -> pd.DataFrame:
    """The check for every loss of ``study.losses``, or of a profile's study (``paper``: every
    loss, from its committed compact results; first study dataset and seed by default); the CSV
    is rewritten after every loss. ``losses``: only these, their rows merged into the CSV's
    (the other losses' rows kept: a study whose runs come in over several sittings is checked as
    they come). ``workers`` runs side by side (default: as many as the machine holds runs of the
    main runs' ``cpu_threads``: one per GPU, else cores / threads)."""
    from dmlstudy.config import load_config

    config = load_config(params_file)
    dataset = dataset or config.study.datasets[0]
    seed = config.study.seeds[0] if seed is None else seed
    if results is None:  # the default pipeline's results, or the paper-grade study's
        from dmlstudy.study.paper import RESULTS_ROOT

        results = "results" if profile is None else RESULTS_ROOT
    todo, results_dir = main_runs(config, dataset, seed, profile, Path(work), Path(results), losses)
    calls = [(TrainSettings(**m["settings"]), m, ci, out) for _, m, ci, out in todo]  # as main
    if workers is None:
        from dmlstudy.training.devices import fitting_workers

        workers = fitting_workers(calls[0][0].cpu_threads) if calls else 1
    order = {loss: i for i, loss in enumerate(study_losses(config, profile))}
    rows: list[dict[str, Any]] = []
    kept = Path(results_dir) / CSV_NAME
    if losses is not None and kept.is_file():  # the other losses' rows stay, if still current
        old = [r for r in pd.read_csv(kept).to_dict("records") if r["loss"] not in losses]
        rows = [
            r for r in old if _still_current(r, list(order), dataset, seed, profile, work, results)
        ]
    for row in _checked(calls, workers):
        rows = sorted([*rows, row], key=lambda r: order[r["loss"]])
        write_check(rows, results_dir)
        log.info("budget check %s: %s", row["loss"], row)
    return pd.DataFrame(rows)


def _still_current(
    row: dict[str, Any], study: list[str], dataset: str, seed: int, profile: str | None,
    work: str | Path, results: str | Path,
) -> bool:  # fmt: skip
    """Whether a kept CSV row still describes its loss's main run (same seed, stop epoch and test
    MAP@R); a row whose main run changed or is gone is dropped, with a log line."""
    loss = row["loss"]
    if loss not in study:
        log.warning("budget check: dropped the row of %s (not a loss of the study)", loss)
        return False
    try:
        metrics, _ = main_metrics(dataset, seed, profile, Path(work), Path(results), loss)
    except FileNotFoundError as exc:
        log.warning("budget check: dropped the row of %s (%s)", loss, exc)
        return False
    same = (
        int(row["seed"]) == seed
        and int(row["stop_epoch"]) == int(metrics["epochs_run"])
        and abs(float(row["test_main"]) - 100 * metrics["test"][METRIC]) < 1e-3
    )
    if not same:
        log.warning(
            "budget check: dropped the row of %s: its main run changed since (rerun it with "
            "--loss %s)", loss, loss,
        )  # fmt: skip
    return same


def _pin_gpu(gpus: Any) -> None:
    """A worker process's initializer: one GPU of the queue ``gpus`` for all its runs."""
    import os

    os.environ["CUDA_VISIBLE_DEVICES"] = gpus.get()


def _checked(calls: list[tuple[Any, ...]], workers: int) -> Iterator[dict[str, Any]]:
    """:func:`check_loss` of each call, in turn or ``workers`` side by side (worker processes of
    the standard library's ProcessPoolExecutor, one GPU each where there are GPUs; taken in
    ``calls``' order), as each ends. A failed run stops the check with its error, as serially."""
    if workers <= 1:
        yield from (check_loss(*c) for c in calls)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from dmlstudy.training.devices import visible_gpus

    ctx = multiprocessing.get_context("spawn")  # no fork of a process that holds torch threads
    init: dict[str, Any] = {}
    if gpus := visible_gpus():
        if workers > len(gpus):
            raise ValueError(
                f"--workers {workers} on {len(gpus)} visible GPU(s): each worker takes one GPU; "
                f"use --workers {len(gpus)}"
            )
        queue = ctx.Queue()
        for g in gpus[:workers]:
            queue.put(g)
        init = {"initializer": _pin_gpu, "initargs": (queue,)}
    with ProcessPoolExecutor(workers, mp_context=ctx, **init) as pool:
        futures = [pool.submit(check_loss, *c) for c in calls]
        try:
            for fut in as_completed(futures):
                yield fut.result()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)  # runs under way end (reused next time)
            raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("params", nargs="?", default="params.yaml")
    parser.add_argument("--dataset", default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--profile",
        default=None,
        help="check a profile's study from its committed compact results (paper: every loss); "
        "default: the default pipeline's runs in work/runs",
    )
    parser.add_argument(
        "--workers", type=int, default=None,
        help="runs side by side (default: one per GPU, else cores / the runs' cpu_threads)",
    )  # fmt: skip
    parser.add_argument(
        "--loss", action="append", default=None, metavar="LOSS",
        help="check only this loss (repeatable); its row replaces its row in the CSV, the other "
        "losses' rows are kept (a study whose runs come in over several sittings)",
    )  # fmt: skip
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    table = run(
        args.params, args.dataset, args.seed, profile=args.profile, workers=args.workers,
        losses=args.loss,
    )  # fmt: skip
    print(check_sentence(table, CSV_NAME))
    return 0 if table["passed"].all() else 1


if __name__ == "__main__":
    raise SystemExit(main())
