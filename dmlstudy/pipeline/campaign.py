"""Equal tuning effort for every loss, on validation classes only (Musgrave et al., ECCV 2020).

``tuning:`` in params.yaml declares a search space per loss (``space.<loss>``, plus
``space.common`` for all) and a trial count that is the same for every loss. For each loss:

1. *search*: trial 0 is the published defaults; trials 1..T-1 are a Latin-hypercube sample of
   the space (``scipy.stats.qmc``, seeded from ``tuning.seed`` and the loss name), each trained
   at ``tuning.budget`` on seed ``tuning.seed``, ranked by validation MAP@R;
2. *confirm*: the ``confirm_top`` best trials re-run at the full protocol budget on every seed of
   ``confirm_seeds``; the winner has the best mean validation MAP@R and goes to
   ``losses.<loss>.per_dataset.<dataset>`` (``winner_overrides``).

No run embeds the test split (``evaluate_test=False``). Every trial is a resumable run folder,
so an interrupted campaign continues where it stopped::

    python -m dmlstudy.pipeline.campaign params.yaml --prepared-dir work/prepared/omniglot \\
        --out-dir work/tuning/omniglot --results results/tuning/omniglot
"""

from __future__ import annotations

import argparse
import json
import math
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dmlstudy.config import StudyConfig, load_config
from dmlstudy.pipeline.ablation import Launcher, train_all
from dmlstudy.pipeline.results import epochs_for_readers
from dmlstudy.pipeline.runs import train_overrides, train_settings
from dmlstudy.training.settings import TrainSettings


def _draw(spec: dict[str, list[Any]], u: float) -> Any:
    """Map ``u`` in [0, 1) through one dimension: ``uniform``/``log`` [lo, hi], ``int`` [lo, hi]
    or ``choice`` [a, b, ...] (validated by the config schema)."""
    ((kind, args),) = spec.items()
    if kind == "choice":
        return args[min(int(u * len(args)), len(args) - 1)]
    lo, hi = args
    if kind == "int":
        return int(lo + min(int(u * (hi - lo + 1)), hi - lo))
    value = (
        lo + u * (hi - lo)
        if kind == "uniform"
        else math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
    )
    return float(f"{value:.3g}")


def sample_space(space: dict[str, dict[str, list[Any]]], n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` points of ``space`` by Latin hypercube sampling (every dimension stratified).

    >>> pts = sample_space({"margin": {"uniform": [0.0, 1.0]}, "miner": {"choice": ["a", "b"]}},
    ...                    4, seed=0)
    >>> len(pts), sorted(int(p["margin"] * 4) for p in pts)
    (4, [0, 1, 2, 3])
    """
    from scipy.stats import qmc

    if n <= 0 or not space:
        return [{} for _ in range(max(n, 0))]
    u = qmc.LatinHypercube(d=len(space), seed=np.random.default_rng(seed)).random(n)
    return [
        {k: _draw(spec, float(row[i])) for i, (k, spec) in enumerate(space.items())} for row in u
    ]


def loss_space(config: StudyConfig, loss: str) -> dict[str, dict[str, list[Any]]]:
    """``tuning.space.common`` updated by ``tuning.space.<loss>``."""
    t = config.tuning
    return {**t.space.get("common", {}), **t.space.get(loss, {})}


def trial_points(config: StudyConfig, loss: str) -> list[dict[str, Any]]:
    """The search trials of ``loss``: the published defaults, then the sampled points."""
    t = config.tuning
    seed = int(zlib.crc32(f"{t.seed}:{loss}".encode()))
    return [{}, *sample_space(loss_space(config, loss), t.trials - 1, seed)]


def _split(point: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    loss_params = {k: v for k, v in point.items() if not k.startswith("train.")}
    train = {k.removeprefix("train."): v for k, v in point.items() if k.startswith("train.")}
    return loss_params, train


def _settings(
    config: StudyConfig,
    loss: str,
    point: dict[str, Any],
    seed: int,
    out_dir: Path,
    prepared_dir: str | Path,
    budget: dict[str, Any] | None,
    fixed: dict[str, Any],
    budget_params: dict[str, Any] | None = None,
) -> TrainSettings:
    loss_params, train = _split(point)
    loss_params = {**(budget_params or {}), **loss_params}
    return train_settings(
        config,
        config.tuning.dataset,
        loss,
        seed,
        prepared_dir=prepared_dir,
        out_dir=out_dir,
        loss_params=loss_params,
        budget=budget,
        extra={**train, **fixed, "evaluate_test": False},
        tuned=False,
    )


def _row(loss: str, phase: str, trial: int, point: dict, s: TrainSettings, m: dict) -> dict:
    return {
        "loss": loss,
        "phase": phase,
        "trial": trial,
        "seed": s.seed,
        "point": json.dumps(point, sort_keys=True),
        "val_map@r": m["val"]["map@r"],
        "val_recall@1": m["val"]["recall@1"],
        "best_epoch": m["best_epoch"],
        "epochs_run": m.get("epochs_run"),
        "converged": m.get("converged"),
        "train_seconds": m["train_seconds"],
    }


def search_settings(
    config: StudyConfig,
    prepared_dir: str | Path,
    out_dir: str | Path,
    losses: Sequence[str],
    fixed: dict[str, Any] | None = None,
) -> list[tuple[str, int, dict[str, Any], TrainSettings]]:
    """(loss, trial, point, settings) of every search trial: ``tuning.budget`` and the loss's
    ``tuning.loss_params`` (what the short budget needs) under the point."""
    t, out_dir, fixed = config.tuning, Path(out_dir), fixed or {}
    out = []
    for loss in losses:
        for i, p in enumerate(trial_points(config, loss)):
            run = out_dir / loss / f"trial{i}"
            extra = t.loss_params.get(loss, {})
            s = _settings(config, loss, p, t.seed, run, prepared_dir, t.budget, fixed, extra)
            out.append((loss, i, p, s))
    return out


def confirm_settings(
    config: StudyConfig,
    loss: str,
    point: dict[str, Any],
    seed: int,
    out_dir: Path,
    prepared_dir: str | Path,
    fixed: dict[str, Any] | None = None,
) -> TrainSettings:
    """A point at the protocol's full budget (how the study would train it), validation only."""
    return _settings(config, loss, point, seed, out_dir, prepared_dir, None, fixed or {})


def run_campaign(
    config: StudyConfig,
    *,
    prepared_dir: str | Path,
    out_dir: str | Path,
    losses: Sequence[str] | None = None,
    launcher: Launcher = train_all,
    cpu_threads: int | None = None,
) -> pd.DataFrame:
    """Run (or resume) the search and the confirmation of every loss; one row per run.
    ``cpu_threads`` (e.g. 1 on a machine shared with other jobs) changes no tuned value, only
    the last bits of the float results."""
    fixed = {} if cpu_threads is None else {"cpu_threads": cpu_threads}
    t, out_dir = config.tuning, Path(out_dir)
    losses = list(losses or config.study.losses)
    search = search_settings(config, prepared_dir, out_dir, losses, fixed)
    rows = [
        _row(loss, "search", i, p, s, m)
        for (loss, i, p, s), m in zip(search, launcher([x[3] for x in search]))
    ]
    found = pd.DataFrame(rows)
    confirm = []
    for loss in losses:
        best = found[found["loss"] == loss].sort_values(
            ["val_map@r", "trial"], ascending=[False, True]
        )
        for _, r in best.head(t.confirm_top).iterrows():
            point = json.loads(r["point"])
            for seed in t.confirm_seeds:
                run = out_dir / loss / f"confirm{r['trial']}" / f"seed{seed}"
                confirm.append(
                    (
                        loss,
                        int(r["trial"]),
                        point,
                        confirm_settings(config, loss, point, seed, run, prepared_dir, fixed),
                    )
                )
    rows += [
        _row(loss, "confirm", i, p, s, m)
        for (loss, i, p, s), m in zip(confirm, launcher([x[3] for x in confirm]))
    ]
    return pd.DataFrame(rows)


def winners(trials: pd.DataFrame) -> pd.DataFrame:
    """Per loss, the confirmed trial with the best mean validation MAP@R over the seeds."""
    conf = trials[trials["phase"] == "confirm"]
    mean = conf.groupby(["loss", "trial", "point"], as_index=False)["val_map@r"].agg(
        ["mean", "std", "count"]
    )
    mean = mean.sort_values(["loss", "mean", "trial"], ascending=[True, False, True])
    return mean.groupby("loss", sort=False).head(1).reset_index(drop=True)


def winner_overrides(config: StudyConfig, best: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """``losses.<loss>.per_dataset.<dataset>`` values of the winners: the points' values that
    differ from the published defaults (training settings under ``train``)."""
    out: dict[str, dict[str, Any]] = {}
    for _, r in best.iterrows():
        loss_params, train = _split(json.loads(r["point"]))
        published = config.published_loss_params(r["loss"])
        protocol = train_overrides(config, config.tuning.dataset, r["loss"], tuned=False)
        default = TrainSettings.model_fields
        values = {k: v for k, v in loss_params.items() if published.get(k) != v}
        train = {k: v for k, v in train.items() if protocol.get(k, default[k].default) != v}
        if train:
            values["train"] = train
        out[r["loss"]] = values
    return out


def _logged(settings: Sequence[TrainSettings]) -> list[dict[str, Any]]:
    """:func:`train_all` with one line per finished run on stderr."""
    import sys
    import time

    out = []
    for i, s in enumerate(settings, 1):
        start = time.perf_counter()
        out.extend(train_all([s]))
        print(
            f"[{i}/{len(settings)}] {s.out_dir}: val MAP@R {out[-1]['val']['map@r']:.4f}, "
            f"{time.perf_counter() - start:.0f} s",
            file=sys.stderr,
            flush=True,
        )
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("params_file")
    ap.add_argument("--prepared-dir", required=True)
    ap.add_argument("--out-dir", required=True, help="run folders (resumable)")
    ap.add_argument("--results", required=True, help="folder for trials.csv and winners.csv")
    ap.add_argument("--loss", action="append", help="only these losses (default study.losses)")
    ap.add_argument("--cpu-threads", type=int, help="torch threads per run (default: torch's)")
    a = ap.parse_args(argv)
    config = load_config(a.params_file)
    trials = run_campaign(
        config,
        prepared_dir=a.prepared_dir,
        out_dir=a.out_dir,
        losses=a.loss,
        launcher=_logged,
        cpu_threads=a.cpu_threads,
    )
    results = Path(a.results)
    results.mkdir(parents=True, exist_ok=True)
    epochs_for_readers(trials).to_csv(results / "trials.csv", index=False)
    best = winners(trials)
    epochs_for_readers(best).to_csv(results / "winners.csv", index=False)
    print(json.dumps(winner_overrides(config, best), indent=1))


if __name__ == "__main__":
    main()
