"""The tuning campaign as a report section: the declared search space (``tuning.space``), the
effort each loss got (equal epochs of search), the best values and their confirmation runs (mean
validation MAP@R over seeds), read from the record in ``results/tuning/<dataset>/``
(``summary.csv``, ``trials.csv``, ``winners.csv``, written by :mod:`dmlstudy.study.campaign`)
or, until that campaign has run, from campaign v1's in ``v1/`` (the values params.yaml holds).
Values in percent.

>>> space_rows({"train.lr": {"log": [0.0003, 0.003]}, "miner": {"choice": ["all", "hard"]}})
[('train.lr', 'log-uniform [0.0003, 0.003]'), ('miner', 'one of all, hard')]
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from dmlstudy.analysis.campaign_checks import (
    confirmation_margins,
    first_rung_check,
    margins_sentence,
    p_text,
    search_runs,
    search_trials_at_first_rung,
)
from dmlstudy.config import StudyConfig
from dmlstudy.config.tuning import COLLAPSED, boundary_hits, loss_limits

KINDS = {"uniform": "uniform", "log": "log-uniform", "int": "integer"}


def space_rows(space: dict[str, dict[str, list[Any]]]) -> list[tuple[str, str]]:
    """(parameter, distribution in words) of one loss's search dimensions."""
    rows = []
    for key, spec in space.items():
        ((kind, args),) = spec.items()
        if kind == "choice":
            rows.append((key, "one of " + ", ".join(map(str, args))))
        else:
            rows.append((key, f"{KINDS[kind]} [{args[0]:g}, {args[1]:g}]"))
    return rows


@dataclass
class CampaignReport:
    """What the evaluation report shows of the campaign; ``ran`` False: only ``message``."""

    ran: bool
    message: str
    space: pd.DataFrame = field(default_factory=pd.DataFrame)
    effort: pd.DataFrame = field(default_factory=pd.DataFrame)
    best: pd.DataFrame = field(default_factory=pd.DataFrame)
    confirmation: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: does the first Hyperband rung prune the low learning rates? (a sentence and its table)
    first_rung_note: str = ""
    first_rung: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: is each confirmed choice a measured difference? (a sentence and its table)
    margins_note: str = ""
    margins: pd.DataFrame = field(default_factory=pd.DataFrame)


def _point(text: str) -> str:
    values = json.loads(text)
    return ", ".join(
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()
    )


def used_by_run(point: dict[str, Any], settings: dict[str, Any]) -> bool:
    """Whether a run's settings carry every value of a campaign point (``train.<field>`` keys
    in the training settings, the others in ``loss_params``).

    >>> used_by_run({"margin": 0.2, "train.lr": 0.001},
    ...             {"lr": 0.001, "loss_params": {"margin": 0.2, "miner": "all"}})
    True
    """
    for key, value in point.items():
        where = settings if key.startswith("train.") else settings.get("loss_params", {})
        if where.get(key.removeprefix("train.")) != value:
            return False
    return True


def _pct(v: float) -> str:
    return "—" if pd.isna(v) else f"{100 * v:.1f}"


def _tables(
    confirm: pd.DataFrame, winners: pd.DataFrame, settings: dict[str, dict[str, Any]]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(best, confirmation) tables from confirmation rows (``trial``: the confirmed search trial)
    and the winners."""
    conf = confirm.groupby(["loss", "trial", "point"], as_index=False)["val_map@r"].agg(
        ["mean", "std", "count"]
    )
    chosen = set(zip(winners["loss"], winners["trial"]))
    confirmation = pd.DataFrame(
        {
            "loss": conf["loss"],
            "trial": conf["trial"],
            "values": conf["point"].map(_point).replace("", "published defaults"),
            "val MAP@R (mean over seeds)": conf["mean"].map(_pct),
            "sd": (100 * conf["std"].fillna(0.0)).map(lambda v: f"{v:.1f}"),
            "seeds": conf["count"],
            "chosen": [
                ("yes" if (lo, tr) in chosen else "") for lo, tr in zip(conf["loss"], conf["trial"])
            ],
        }
    ).set_index(["loss", "trial"])
    best = pd.DataFrame(
        {
            "trial": winners["trial"].to_numpy(),
            "values": winners["point"].map(_point).replace("", "published defaults").to_numpy(),
            "val MAP@R (mean over seeds)": winners["mean"].map(_pct).to_numpy(),
            "used by the evaluated runs": [
                "yes"
                if used_by_run(json.loads(pt), settings[lo])
                else "no: copy the winner into losses.<loss>.per_dataset and rerun"
                for lo, pt in zip(winners["loss"], winners["point"])
            ],
        },
        index=pd.Index(winners["loss"], name="loss"),
    )
    return best, confirmation


def campaign_report(
    config: StudyConfig,
    dataset: str,
    tuning_dir: str | Path,
    settings: dict[str, dict[str, Any]],
) -> CampaignReport:
    """The campaign section of ``dataset`` for the losses of ``settings`` (loss → its run's
    ``metrics.json["settings"]``, to check that the runs used the winners' values), read from
    ``tuning_dir`` (the Optuna campaign's record, else campaign v1's in ``tuning_dir/v1``)."""
    t = config.tuning
    losses: Sequence[str] = list(settings)
    space = pd.DataFrame(
        [(loss, key, dist) for loss in losses for key, dist in space_rows(t.loss_space(loss))],
        columns=["loss", "parameter", "searched over"],
    ).set_index(["loss", "parameter"])
    folder = Path(tuning_dir)
    v1 = (folder / "v1" / "trials.csv").is_file()
    if (folder / "summary.csv").is_file():
        winners = pd.read_csv(folder / "winners.csv")
        if set(losses) <= set(winners["loss"]) or not v1:
            return _optuna_report(config, folder, losses, settings, space)
        # the new campaign is under way: its record is partial, the runs use v1's values
        report = _v1_report(folder / "v1", losses, settings, space)
        report.message += " " + _progress(folder, losses, set(winners["loss"]))
        return report
    if v1:
        return _v1_report(folder / "v1", losses, settings, space)
    return CampaignReport(
        ran=False,
        message=(
            f"The tuning campaign has not been run on {dataset} (no record in the results): "
            f"every loss uses its published hyper-parameters and the training settings of its "
            f"family. The campaign (python -m dmlstudy.study.campaign) gives every loss "
            f"{t.epochs_per_loss} training epochs of validation-only search over the space below."
        ),
        space=space,
    )


def _progress(folder: Path, losses: Sequence[str], confirmed: set[str]) -> str:
    """A sentence on a campaign under way (its record in ``folder``)."""
    summary = pd.read_csv(folder / "summary.csv").set_index("loss").reindex(losses)
    searched = summary.index[summary["epochs_spent"].fillna(0) >= summary["epochs_per_loss"]]
    return (
        f"The Optuna campaign that replaces it is under way ({folder}): {len(searched)} of "
        f"{len(losses)} losses searched ({', '.join(searched) or 'none yet'}), "
        f"{len(confirmed & set(losses))} confirmed; its values reach params.yaml when every "
        "loss is confirmed."
    )


def _optuna_report(
    config: StudyConfig,
    folder: Path,
    losses: Sequence[str],
    settings: dict[str, dict[str, Any]],
    space: pd.DataFrame,
) -> CampaignReport:
    t = config.tuning
    summary = pd.read_csv(folder / "summary.csv", keep_default_na=False, na_values=[""])
    summary = summary.set_index("loss").reindex(losses)
    spent = summary["epochs_spent"].fillna(0).astype(int)
    effort = pd.DataFrame(
        {
            "trials": summary["trials"].fillna(0).astype(int),
            "epochs spent": spent,
            "complete": summary["complete"].fillna(0).astype(int),
            "pruned": summary["pruned"].fillna(0).astype(int),
            "cut by the budget": summary["stopped_by_budget"].fillna(0).astype(int),
            f"collapsed (< {COLLAPSED:.0%})": summary["collapsed"].fillna(0).astype(int),
            "published val MAP@R": summary["published_val_map@r"].map(_pct),
            "best search val MAP@R": summary["best_val_map@r"].map(_pct),
        }
    )
    trials = pd.read_csv(folder / "trials.csv")
    effort["boundary hits"] = _boundary_hits(config, folder, summary, trials)
    effort.insert(1, "studies (epochs)", _studies(trials, losses))
    confirm = trials[(trials["phase"] == "confirm") & (trials["state"] == "COMPLETE")]
    confirm = confirm[confirm["loss"].isin(losses)].drop(columns="trial")
    confirm = confirm.rename(columns={"source": "trial"})
    winners = pd.read_csv(folder / "winners.csv")
    best, confirmation = _tables(confirm, winners[winners["loss"].isin(losses)], settings)
    # the budget the record was searched under (params.yaml may since ask for more)
    budget = (
        int(summary["epochs_per_loss"].max()) if summary["epochs_per_loss"].notna().any() else 0
    )
    short = spent[spent < budget] if budget else spent
    message = (
        f"Equal effort: every loss had {budget} training epochs of search (all its "
        f"trials, pruned ones included; trial 0: the published values; Optuna TPE, Hyperband "
        f"over the validation rounds) in its latest search space, then its best "
        f"{t.confirm_top} trials (complete, or cut by the budget while they ran) at the full "
        f"protocol on seeds {list(t.confirm_seeds)}; all selected on validation MAP@R, never "
        f"test. A loss whose best point sat on a bound of its space was searched again in a "
        f"widened space with its own budget: 'studies (epochs)' lists every study."
        if short.empty
        else "UNEQUAL tuning effort: the search of "
        + ", ".join(f"{k} ({v} epochs)" for k, v in short.items())
        + f" has not spent its {budget or t.epochs_per_loss} epochs; rerun the campaign (it "
        "resumes)."
    )
    note, table = first_rung_section(trials[trials["loss"].isin(losses)], t.pruner)
    margins = confirmation_margins(confirm, winners[winners["loss"].isin(losses)])
    return CampaignReport(
        True,
        message,
        space,
        effort,
        best,
        confirmation,
        note,
        table,
        margins_sentence(margins),
        margins.round(2),
    )


def _boundary_hits(
    config: StudyConfig, folder: Path, summary: pd.DataFrame, trials: pd.DataFrame
) -> list[str]:
    """Per loss, the boundary hits of its winner (else its best search trial) in the space of
    its latest study (the study's own record of it), a hit on a parameter's own limit marked
    (:func:`dmlstudy.config.tuning.boundary_hits`): recomputed here, so that a record written
    by an earlier campaign version (summary.csv's column, without the limits) reads the same."""
    out = []
    for loss, row in summary.iterrows():
        trial = row["winner_trial"] if pd.notna(row["winner_trial"]) else row["best_trial"]
        search = trials[
            (trials["loss"] == loss)
            & (trials["study"] == row["study"])
            & (trials["phase"] == "search")
            & (trials["trial"] == (int(trial) if pd.notna(trial) else -1))
        ]
        if search.empty:
            out.append("")
            continue
        hits = boundary_hits(
            json.loads(search.iloc[0]["point"]),
            study_space(folder / "optuna.db", str(row["study"])),
            config.tuning.boundary_margin,
            loss_limits(str(loss)),
        )
        out.append("; ".join(hits))
    return out


def study_space(db: Path, study: str) -> dict[str, Any]:
    """The search space a study of the campaign's storage was created with (its ``space``
    attribute), read with sqlite3 from Optuna's schema: importing optuna here would import
    tqdm.auto, whose warning would land on every report page as a stderr block."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
        row = con.execute(
            "SELECT a.value_json FROM study_user_attributes a JOIN studies s "
            "ON a.study_id = s.study_id WHERE s.study_name = ? AND a.key = 'space'",
            (study,),
        ).fetchone()
    if row is None:
        raise ValueError(f"{db}: study {study!r} has no recorded space; rerun the campaign")
    return json.loads(json.loads(row[0]))


def _studies(trials: pd.DataFrame, losses: Sequence[str]) -> pd.Series:
    """Per loss, its search studies with the epochs each spent ("arcface (401), arcface.2 (102)"):
    a widened space's extra budget in plain sight."""
    spent = search_runs(trials)["epochs"].groupby(["loss", "study"]).sum()
    text = {
        loss: ", ".join(f"{study} ({int(e)})" for (_, study), e in spent.loc[[loss]].items())
        for loss in spent.index.get_level_values(0).unique()
    }
    return pd.Series([text.get(loss, "") for loss in losses], index=list(losses))


def first_rung_section(trials: pd.DataFrame, pruner: Any) -> tuple[str, pd.DataFrame]:
    """Does Hyperband's first rung (``min_resource`` epochs) prune the low learning rates? A
    sentence with the pooled within-loss effect and its permutation p, and the per-loss table
    (:mod:`dmlstudy.analysis.campaign_checks`)."""
    rung = pruner.hyperband.min_resource
    r = first_rung_check(search_trials_at_first_rung(trials, rung))
    if r.per_loss.empty:
        return "", r.per_loss
    pruned = int(r.per_loss["pruned at rung 1"].sum())
    met = pruned + int(r.per_loss["trained past it"].sum())
    head = (
        f"Fast starters? Hyperband's first rung (epoch {rung}) pruned {pruned} of the {met} "
        f"search trials that reached it."
    )
    if pd.isna(r.effect):
        return head + " No loss has trials on both sides of it: nothing to compare.", r.per_loss
    direction = "lower" if r.effect < 0 else "higher"
    note = (
        f"{head} Within each loss, the pruned trials' learning rates "
        f"rank {direction} than the others' by {abs(r.effect):.2f} of the largest possible gap "
        f"(0: none, 1: complete separation; {p_text(r.p, r.n_perm)}, a permutation test within "
        f"losses; per-loss Mann-Whitney tests below)."
    )
    return note, r.per_loss


def _v1_report(
    folder: Path,
    losses: Sequence[str],
    settings: dict[str, dict[str, Any]],
    space: pd.DataFrame,
) -> CampaignReport:
    """Campaign v1 (equal trial counts at a short budget): the record params.yaml's values came
    from."""
    trials = pd.read_csv(folder / "trials.csv")
    trials = trials[trials["loss"].isin(losses)]
    search, confirm = trials[trials["phase"] == "search"], trials[trials["phase"] == "confirm"]
    counts = search.groupby("loss").size().reindex(losses, fill_value=0)
    effort = pd.DataFrame(
        {
            "search trials": counts,
            "confirmation runs": confirm.groupby("loss").size().reindex(losses, fill_value=0),
            "best search val MAP@R": search.groupby("loss")["val_map@r"].max().map(_pct),
        }
    ).reindex(losses)
    effort["best search val MAP@R"] = effort["best search val MAP@R"].fillna("—")
    equal = counts.nunique() == 1 and counts.iloc[0] > 0
    winners_csv = folder / "winners.csv"
    winners = pd.read_csv(winners_csv) if winners_csv.is_file() else confirm.iloc[:0]
    best, confirmation = _tables(confirm, winners[winners["loss"].isin(losses)], settings)
    seeds = sorted(confirm["seed"].unique().tolist())
    top = confirm.groupby("loss")["trial"].nunique().max() if len(confirm) else 0
    effort_note = (
        f"Campaign v1 (the values in use until the Optuna campaign replaces them): every loss "
        f"had {counts.iloc[0]} search trials (trial 0: the published values) of "
        f"{int(search['epochs_run'].max())} epochs, then its best {top} confirmed at the full "
        f"budget on seeds {seeds}; all selected on validation MAP@R, never test."
        if equal
        else "UNEQUAL tuning effort: search trials per loss differ ("
        + ", ".join(f"{k}: {v}" for k, v in counts.items())
        + "); rerun the campaign for the losses with fewer trials."
    )
    return CampaignReport(True, effort_note, space, effort, best, confirmation)
