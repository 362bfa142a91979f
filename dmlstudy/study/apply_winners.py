"""Write the tuning campaign's confirmed winners into params.yaml (issue #15's last step)::

    python -m dmlstudy.study.apply_winners params.yaml [--record results/tuning/omniglot]
        [--loss triplet --loss ...]

Per loss with a winner in ``<record>/winners.csv`` (a trial confirmed on every seed of
``tuning.confirm_seeds``; ``--loss`` narrows the set): ``losses.<loss>.per_dataset.<dataset>``
(``tuning.dataset``) becomes the winner's values that differ from the published ones and the
protocol's (:func:`~dmlstudy.study.campaign.winner_overrides`, what
``tests/pipeline/test_tuned_values.py`` checks), and the ``per_dataset:`` line's comment names
the trial and its confirmed val MAP@R. A regularizer of a base loss (``direction``, ``language``:
``losses.<loss>.base``) whose base got a winner gets the base's tuned values as ``base_params``,
in its ``per_dataset`` entry (its runs train over the tuned base) and in
``tuning.loss_params.<loss>`` (its own campaign searches over the tuned base); without a winner
of its own in the record its other values predate that base, and the output says to run its
campaign and apply again. An ablation arm with its own search space (``<ablation>/<arm>`` in the
record: DAAL's point proxy) gets its winner in ``ablations.<ablation>.variants.<arm>.per_dataset.
<dataset>``. The edits are made in the text (comments and layout kept) and each is
parsed back (:mod:`dmlstudy.study.params_text`). Deciding which winners may be applied (a
winner on the edge of its space widens the space first: README, the campaign) comes before.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from dmlstudy.config import load_config
from dmlstudy.study.params_text import (
    ParamsEditError,
    write_arm_winner,
    write_tuning_loss_params,
    write_winner,
)


def base_params(values: dict[str, Any]) -> dict[str, Any]:
    """A base loss's tuned values as a regularizer's ``base_params`` (its constructor keywords;
    the training settings are the regularizer's own).

    >>> base_params({"margin": 0.07, "miner": "semihard", "train": {"lr": 0.002}})
    {'margin': 0.07, 'miner': 'semihard'}
    """
    return {k: v for k, v in values.items() if k != "train"}


def comment(row: pd.Series, label: str = "campaign", published: bool = False) -> str:
    """The ``per_dataset:`` line's comment for a winner (``winners.csv`` row; ``published``: its
    values are the published ones, so the entry holds none).

    >>> comment(pd.Series({"trial": 7, "mean": 0.5241, "std": 0.0063, "count": 3}))
    'campaign trial 7, val MAP@R 52.4 ± 0.6 (3 seeds)'
    >>> comment(pd.Series({"trial": 4, "mean": 0.5122, "std": 0.0099, "count": 3}), published=True)
    'campaign trial 4 (the published values), val MAP@R 51.2 ± 1.0 (3 seeds)'
    """
    what = " (the published values)" if published else ""
    return (
        f"{label} trial {int(row['trial'])}{what}, val MAP@R {100 * row['mean']:.1f} ± "
        f"{100 * row['std']:.1f} ({int(row['count'])} seeds)"
    )


def apply(
    params_file: Path, record: Path, losses: Sequence[str] | None = None, label: str = "campaign"
) -> list[str]:
    """Write the winners (module docstring); returns what was done, one line each."""
    from dmlstudy.study.campaign import ARM, subject, winner_overrides

    config = load_config(params_file)
    dataset = config.tuning.dataset
    best = pd.read_csv(record / "winners.csv")
    missing = sorted(set(losses or []) - set(best["loss"]))
    if missing:
        raise ValueError(
            f"{record / 'winners.csv'} has no confirmed winner of {', '.join(missing)}: let the "
            f"campaign confirm them first; winners: {', '.join(best['loss']) or 'none'}"
        )
    if losses:
        best = best[best["loss"].isin(losses)]
    values = winner_overrides(config, best)
    rows = {r["loss"]: r for _, r in best.iterrows()}
    regularizers = {
        name: s["base"] for name, s in config.losses.items() if s.get("base") is not None
    }
    done = []
    for loss in [x for x in rows if x not in regularizers]:
        note = comment(rows[loss], label, not values[loss])
        if ARM in loss:  # an ablation arm with its own search space
            ablation, arm = loss.split(ARM)
            write_arm_winner(params_file, ablation, arm, dataset, values[loss], note)
            done.append(f"{subject(config, loss).writes_to}.{dataset} = {values[loss]}")
            continue
        write_winner(params_file, loss, dataset, values[loss], note)
        done.append(f"losses.{loss}.per_dataset.{dataset} = {values[loss]}")
    for loss, base in regularizers.items():
        if loss not in rows and base not in rows:
            continue
        tuned_base = config.losses[base].get("per_dataset", {}).get(dataset, {})
        base_values = base_params(values[base] if base in rows else tuned_base)
        own = (
            values[loss]
            if loss in rows
            else config.losses[loss].get("per_dataset", {}).get(dataset, {})
        )
        entry = {k: v for k, v in own.items() if k != "base_params"}
        if base_values:
            entry = {**entry, "base_params": base_values}
        note = comment(rows[loss], label) if loss in rows else None
        write_winner(params_file, loss, dataset, entry, note)
        write_tuning_loss_params(
            params_file, loss, {"base_params": base_values} if base_values else {}
        )
        done.append(f"losses.{loss}.per_dataset.{dataset} = {entry}")
        if loss not in rows:
            done.append(
                f"{loss}: base_params are {base}'s new tuned values, in its entry and in "
                f"tuning.loss_params.{loss}; its other values were tuned over the old base: run "
                f"the campaign for it (--loss {loss}) and apply again"
            )
    return done


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dmlstudy.study.apply_winners")
    ap.add_argument("params", type=Path)
    ap.add_argument("--record", type=Path, help="the campaign record (default: tuning.storage's)")
    ap.add_argument("--loss", action="append", help="only these losses (default: every winner)")
    ap.add_argument("--label", default="campaign", help="the comments' first word(s)")
    a = ap.parse_args(argv)
    record = a.record or Path(load_config(a.params).tuning.storage_path()).parent
    try:
        for line in apply(a.params, record, a.loss, a.label):
            print(line)
    except (ParamsEditError, ValueError) as err:
        print(f"apply_winners: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
