"""The tuning campaign as a report section: the declared search space (``tuning.space``), the
trials each loss got (which must be equal), the best values and their confirmation runs (mean
validation MAP@R over seeds), read from ``results/tuning/<dataset>/trials.csv`` and
``winners.csv`` (written by :mod:`dmlstudy.pipeline.campaign`). Values in percent.

>>> space_rows({"train.lr": {"log": [0.0003, 0.003]}, "miner": {"choice": ["all", "hard"]}})
[('train.lr', 'log-uniform [0.0003, 0.003]'), ('miner', 'one of all, hard')]
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from dmlstudy.config import StudyConfig

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


def campaign_report(
    config: StudyConfig,
    dataset: str,
    tuning_dir: str | Path,
    settings: dict[str, dict[str, Any]],
) -> CampaignReport:
    """The campaign section of ``dataset`` for the losses of ``settings`` (loss → its run's
    ``metrics.json["settings"]``, to check that the runs used the winners' values), read from
    ``tuning_dir``."""
    t = config.tuning
    losses: Sequence[str] = list(settings)
    space = pd.DataFrame(
        [
            (loss, key, dist)
            for loss in losses
            for key, dist in space_rows({**t.space.get("common", {}), **t.space.get(loss, {})})
        ],
        columns=["loss", "parameter", "searched over"],
    ).set_index(["loss", "parameter"])
    trials_csv = Path(tuning_dir) / "trials.csv"
    if not trials_csv.is_file():
        return CampaignReport(
            ran=False,
            message=(
                f"The tuning campaign has not been run on {dataset} (no {trials_csv.name} in "
                f"the results): every loss uses its published hyper-parameters and the training "
                f"settings of its family. The campaign (python -m dmlstudy.pipeline.campaign) "
                f"gives every loss {t.trials} validation-only trials over the space below."
            ),
            space=space,
        )
    trials = pd.read_csv(trials_csv)
    trials = trials[trials["loss"].isin(losses)]
    search, confirm = trials[trials["phase"] == "search"], trials[trials["phase"] == "confirm"]
    counts = search.groupby("loss").size().reindex(losses, fill_value=0)
    effort = pd.DataFrame(
        {
            "search trials": counts,
            "confirmation runs": confirm.groupby("loss").size().reindex(losses, fill_value=0),
            "best search val MAP@R": 100 * search.groupby("loss")["val_map@r"].max(),
        }
    ).reindex(losses)
    effort["best search val MAP@R"] = effort["best search val MAP@R"].map(
        lambda v: "—" if pd.isna(v) else f"{v:.1f}"
    )
    equal = counts.nunique() == 1 and counts.iloc[0] > 0
    conf = confirm.groupby(["loss", "trial", "point"], as_index=False)["val_map@r"].agg(
        ["mean", "std", "count"]
    )
    winners_csv = Path(tuning_dir) / "winners.csv"
    winners = pd.read_csv(winners_csv) if winners_csv.is_file() else conf.iloc[:0]
    winners = winners[winners["loss"].isin(losses)]
    chosen = set(zip(winners["loss"], winners["trial"]))
    confirmation = pd.DataFrame(
        {
            "loss": conf["loss"],
            "trial": conf["trial"],
            "values": conf["point"].map(_point).replace("", "published defaults"),
            "val MAP@R (mean over seeds)": (100 * conf["mean"]).map(lambda v: f"{v:.1f}"),
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
            "val MAP@R (mean over seeds)": (100 * winners["mean"])
            .map(lambda v: f"{v:.1f}")
            .to_numpy(),
            "used by the evaluated runs": [
                "yes"
                if used_by_run(json.loads(pt), settings[lo])
                else "no: copy the winner into losses.<loss>.per_dataset and rerun"
                for lo, pt in zip(winners["loss"], winners["point"])
            ],
        },
        index=pd.Index(winners["loss"], name="loss"),
    )
    effort_note = (
        f"Equal effort: every loss had {counts.iloc[0]} search trials (trial 0: the published "
        f"values) at a budget of {', '.join(f'{k}={v}' for k, v in t.budget.items())}, then its "
        f"best {t.confirm_top} confirmed at the full "
        f"budget on seeds {list(t.confirm_seeds)}; all selected on validation MAP@R, never test."
        if equal
        else "UNEQUAL tuning effort: search trials per loss differ ("
        + ", ".join(f"{k}: {v}" for k, v in counts.items())
        + "); rerun the campaign for the losses with fewer trials."
    )
    return CampaignReport(True, effort_note, space, effort, best, confirmation)
