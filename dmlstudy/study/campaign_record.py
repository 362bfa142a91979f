"""The tuning campaign's record, read from its Optuna storage (:mod:`.campaign`): every trial
(``trials.csv``), per loss what the search spent and found (``summary.csv``: trials, epochs,
collapsed trials, best against the published values, boundary hits) and the confirmed winners
(``winners.csv``). Anyone can query the storage itself too::

    import optuna
    optuna.load_study(study_name="arcface", storage="sqlite:///results/tuning/omniglot/optuna.db")

Boundary hits are :func:`dmlstudy.config.tuning.boundary_hits` (beside the space they read).
"""

from __future__ import annotations

import json
import math
import os
import threading
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from dmlstudy.analysis.campaign_checks import search_runs
from dmlstudy.config import StudyConfig
from dmlstudy.config.tuning import COLLAPSED, boundary_hits, loss_limits
from dmlstudy.study.campaign import CONFIRM, search_studies, subject

TRIAL_COLUMNS = [
    "loss", "study", "phase", "trial", "state", "stopped", "retry_of", "published", "source",
    "seed", "point", "val_map@r", "best_val_map@r", "epochs", "pruned_at", "selected_epoch",
    "converged", "collapsed", "seconds",
]  # fmt: skip
SUMMARY_COLUMNS = [
    "loss", "study", "trials", "complete", "pruned", "stopped_by_budget", "diverged", "collapsed",
    "epochs_spent", "epochs_per_loss", "published_val_map@r", "best_trial", "best_val_map@r",
    "winner_trial", "winner_mean", "winner_std", "published_confirmed_mean", "boundary_hits",
]  # fmt: skip


def _losses(storage: optuna.storages.BaseStorage) -> dict[str, str]:
    """loss -> its latest search study, for every loss in the storage."""
    names = {s.study_name for s in optuna.get_all_study_summaries(storage, False)}
    losses = sorted({n.split(CONFIRM)[0].split(".")[0] for n in names})
    return {
        loss: search_studies(storage, loss)[-1] for loss in losses if search_studies(storage, loss)
    }


def _row(loss: str, study: str, phase: str, t: FrozenTrial) -> dict[str, Any]:
    a = t.user_attrs
    best = a.get("best_val", max(t.intermediate_values.values(), default=math.nan))
    finished = t.state in (TrialState.COMPLETE, TrialState.PRUNED)
    seconds = (
        (t.datetime_complete - t.datetime_start).total_seconds()
        if t.datetime_complete and t.datetime_start
        else a.get("seconds")
    )
    return {
        "loss": loss,
        "study": study,
        "phase": phase,
        "trial": t.number,
        "state": t.state.name,
        "stopped": a.get("stopped", ""),
        "retry_of": t.system_attrs.get("failed_trial", ""),
        "published": bool(a.get("published", False)),
        "source": a.get("source", ""),
        "seed": a.get("seed", ""),
        "point": json.dumps(a.get("point", t.params), sort_keys=True),
        "val_map@r": t.value if t.state == TrialState.COMPLETE else math.nan,
        "best_val_map@r": best,
        "epochs": int(a.get("epochs", 0)),
        "pruned_at": int(a.get("epochs", 0)) if a.get("stopped") == "pruner" else "",
        "selected_epoch": a["best_epoch"] + 1 if "best_epoch" in a else "",
        "converged": a.get("converged", ""),
        "collapsed": bool(finished and (math.isnan(best) or best < COLLAPSED)),
        "seconds": seconds,
    }


def trials_table(storage: optuna.storages.BaseStorage) -> pd.DataFrame:
    """One row per trial of every study (search and confirmation), loss by loss."""
    rows = []
    names = {s.study_name for s in optuna.get_all_study_summaries(storage, False)}
    for loss in _losses(storage):
        for study in search_studies(storage, loss):
            for phase, name in (("search", study), ("confirm", study + CONFIRM)):
                if name in names:
                    trials = optuna.load_study(study_name=name, storage=storage).get_trials()
                    rows += [_row(loss, study, phase, t) for t in trials]
    return pd.DataFrame(rows, columns=TRIAL_COLUMNS)


def confirmed(confirm: pd.DataFrame, seeds: int) -> pd.DataFrame:
    """The confirmed candidates (``trials.csv``'s confirmation rows: ``source`` the confirmed
    search trial) of every loss whose candidates are *all* confirmed on ``seeds`` seeds, best
    mean val MAP@R first: loss, trial, point, mean, std, count. A loss with a candidate still
    waiting, running or retried has none yet — the best of some candidates is no winner (a
    record exported while the last confirmations run must not name one).

    >>> c = pd.DataFrame({"loss": "a", "source": [1, 1, 2, 2], "seed": [0, 1, 0, 1],
    ...                   "point": "{}", "val_map@r": [0.5, 0.5, 0.6, float("nan")],
    ...                   "state": ["COMPLETE"] * 3 + ["RUNNING"]})
    >>> len(confirmed(c, 2)), len(confirmed(c.assign(state="COMPLETE", **{"val_map@r": 0.6}), 2))
    (0, 2)
    """
    done = confirm[confirm["state"] == "COMPLETE"].drop_duplicates(
        ["loss", "source", "seed"], keep="last"
    )
    agg = done.groupby(["loss", "source", "point"], as_index=False)["val_map@r"].agg(
        ["mean", "std", "count"]
    )
    agg = agg[agg["count"] == seeds]
    candidates = confirm.groupby("loss")["source"].nunique()
    decided = candidates.index[
        agg.groupby("loss")["source"].nunique().reindex(candidates.index, fill_value=0)
        == candidates
    ]
    agg = agg[agg["loss"].isin(decided)].rename(columns={"source": "trial"})
    return agg.sort_values(["loss", "mean", "trial"], ascending=[True, False, True])


def winners(
    storage: optuna.storages.BaseStorage, config: StudyConfig, trials: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Per loss (its latest study), the confirmed trial with the best mean val MAP@R over every
    seed of ``confirm_seeds``: loss, trial, point, mean, std, count (``trials``: the storage's
    :func:`trials_table`, when read already)."""
    trials = trials_table(storage) if trials is None else trials
    latest = _losses(storage)
    confirm = trials[(trials["phase"] == "confirm") & trials["study"].isin(latest.values())]
    best = confirmed(confirm, len(config.tuning.confirm_seeds))
    best = best.groupby("loss", sort=False).head(1).reset_index(drop=True)
    return best[["loss", "trial", "point", "mean", "std", "count"]]


def summary(
    storage: optuna.storages.BaseStorage, config: StudyConfig, trials: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Per loss (its latest study): what its search spent and found, against trial 0."""
    trials = trials_table(storage) if trials is None else trials
    best_by_loss = winners(storage, config, trials).set_index("loss")
    rows = []
    for loss, study in _losses(storage).items():
        space = json.loads(
            optuna.load_study(study_name=study, storage=storage).user_attrs.get("space", "{}")
        )
        s = trials[(trials["study"] == study) & (trials["phase"] == "search")]
        per_run = search_runs(s)
        complete = s[s["state"] == "COMPLETE"].sort_values(
            ["val_map@r", "trial"], ascending=[False, True]
        )
        published = s[s["published"] & (s["state"] == "COMPLETE")]
        conf = trials[(trials["study"] == study) & (trials["phase"] == "confirm")]
        pub_conf = confirmed(
            conf[conf["source"].isin(published["trial"])], len(config.tuning.confirm_seeds)
        )
        won = best_by_loss.loc[loss] if loss in best_by_loss.index else None
        point = (
            json.loads(won["point"])
            if won is not None
            else (json.loads(complete.iloc[0]["point"]) if len(complete) else {})
        )
        rows.append(
            {
                "loss": loss,
                "study": study,
                "trials": len(per_run),
                "complete": int((per_run["state"] == "COMPLETE").sum()),
                "pruned": int((per_run["stopped"] == "pruner").sum()),
                "stopped_by_budget": int((per_run["stopped"] == "budget").sum()),
                "diverged": int((per_run["stopped"] == "diverged").sum()),
                "collapsed": int(per_run["collapsed"].sum()),
                "epochs_spent": int(per_run["epochs"].sum()),
                "epochs_per_loss": config.tuning.epochs_per_loss,
                "published_val_map@r": published["val_map@r"].max() if len(published) else math.nan,
                "best_trial": complete.iloc[0]["trial"] if len(complete) else "",
                "best_val_map@r": complete.iloc[0]["val_map@r"] if len(complete) else math.nan,
                "winner_trial": won["trial"] if won is not None else "",
                "winner_mean": won["mean"] if won is not None else math.nan,
                "winner_std": won["std"] if won is not None else math.nan,
                "published_confirmed_mean": pub_conf["mean"].iloc[0] if len(pub_conf) else math.nan,
                "boundary_hits": "; ".join(
                    boundary_hits(
                        point,
                        space,
                        config.tuning.boundary_margin,
                        loss_limits(subject(config, loss).loss),
                    )
                ),
            }
        )
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def _write(frame: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    frame.to_csv(tmp, index=False)
    os.replace(tmp, path)


def write_record(
    config: StudyConfig, storage: optuna.storages.BaseStorage, folder: str | Path
) -> None:
    """trials.csv, summary.csv and winners.csv of the storage in ``folder`` (atomic writes)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    trials = trials_table(storage)
    _write(trials, folder / "trials.csv")
    _write(summary(storage, config, trials), folder / "summary.csv")
    _write(winners(storage, config, trials), folder / "winners.csv")
