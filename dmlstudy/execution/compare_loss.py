"""Bring your own loss: tune it with the campaign's budget, train it on the paper-grade seeds and
report it against the committed results of the study's losses, retraining none of them
(``make compare LOSS=<name>``; docs/adding-a-loss.md is the tutorial)::

    python -m dmlstudy.execution.compare_loss params.yaml --loss norm_softmax

Steps, each one the study's own machinery:

1. ``check_params`` and ``dvc repro prepare@<dataset>`` (the prepared data the campaign reads);
2. the tuning campaign for this loss alone (:class:`dmlstudy.study.campaign.Campaign`, the
   same ``tuning`` budget, sampler, pruner and confirmations as every other loss), merged into
   the committed record ``results/tuning/<dataset>/``;
3. its winner written to ``losses.<loss>.per_dataset.<dataset>`` in params.yaml (comments and
   layout kept) and the loss taken out of ``study.untuned``;
4. ``dvc repro`` of the paper-grade study's stages of this loss (``main@<dataset>-<loss>-<seed>``
   of ``studies/paper/dvc.yaml``, every seed of ``profiles.<profile>.seeds``: compact results
   committed like every other loss's), then its report stage: the new loss against the committed
   compact results of the others, over the seeds every loss has, with the same statistics.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

from dmlstudy.config import StudyConfig, load_config
from dmlstudy.study.paper import DVCFILE, main_seeds
from dmlstudy.study.params_text import ParamsEditError, write_winner


class CompareError(RuntimeError):
    """A step of the comparison failed; the message names the step and the fix."""


def check_loss(config: StudyConfig, loss: str, profile: str = "paper") -> None:
    """The loss is in the profile's study with a search space (docs/adding-a-loss.md, steps
    1-2)."""
    if loss not in config.for_profile(profile).study.losses:
        raise CompareError(
            f"{loss!r} is not in profiles.{profile}.losses (the study it is compared in): add it "
            "there (and to study.untuned until it is tuned) with its losses.<name> section — "
            "docs/adding-a-loss.md, step 2"
        )
    if loss not in config.tuning.space:
        raise CompareError(
            f"tuning.space has no {loss} entry: give its search space (`{loss}: {{}}` searches "
            "the common dimensions only) — docs/adding-a-loss.md, step 2"
        )


def _run(cmd: list[str], step: str, root: Path) -> None:
    print(f"== {step}: {' '.join(cmd)}", flush=True)
    if subprocess.run(cmd, cwd=root).returncode:
        raise CompareError(f"{step} failed (above); fix it and run the same command again")


def tune(config: StudyConfig, loss: str) -> dict[str, Any]:
    """The campaign for ``loss`` alone; returns its winner's ``per_dataset`` values."""
    from dmlstudy.study.campaign import Campaign, winner_overrides
    from dmlstudy.study.campaign_record import winners

    dataset = config.tuning.dataset
    campaign = Campaign(  # paths relative to the checkout, as every stage writes them
        config,
        prepared_dir=Path("work") / "prepared" / dataset,
        out_dir=Path("work") / "tuning" / dataset,
        results=Path(config.tuning.storage_path()).parent,
    )
    print(campaign.adopt_record(), file=sys.stderr)
    campaign.work([loss])
    campaign.export()
    best = winners(campaign.storage, config)
    best = best[best["loss"] == loss]
    if best.empty:
        raise CompareError(f"the campaign confirmed no trial of {loss}: see its record")
    return winner_overrides(config, best)[loss]


def compare_loss(params_file: Path, loss: str, profile: str = "paper") -> None:
    """Steps 1-4 of the module docstring, run in the checkout (the current directory)."""
    root = Path.cwd()
    config = load_config(params_file)
    check_loss(config, loss, profile)
    dataset = config.tuning.dataset
    py = sys.executable
    _run([py, "-m", "dmlstudy.study.check_params", str(params_file)], "check_params", root)
    _run([py, "-m", "dvc", "repro", f"prepare@{dataset}"], "prepare", root)
    values = tune(config, loss)
    try:
        write_winner(params_file, loss, dataset, values)
    except ParamsEditError as err:
        raise CompareError(str(err)) from None
    print(f"== losses.{loss}.per_dataset.{dataset} = {values} (written to {params_file})")
    config = load_config(params_file)
    stages = [f"{DVCFILE}:main@{dataset}-{loss}-{s}" for s in main_seeds(config, profile)]
    _run([py, "-m", "dvc", "repro", *stages], "paper-grade runs", root)
    # --single-item: the report alone (its dependency, studies/paper/results/runs, is every
    # stage's output)
    _run([py, "-m", "dvc", "repro", "-s", f"{DVCFILE}:report@{dataset}"], "report", root)
    print(f"== report: reports/paper/{dataset}.html, studies/paper/results/{dataset}/table.csv")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dmlstudy.execution.compare_loss")
    ap.add_argument("params", type=Path)
    ap.add_argument("--loss", required=True)
    ap.add_argument("--profile", default="paper")
    a = ap.parse_args(argv)
    try:
        compare_loss(a.params, a.loss, a.profile)
    except CompareError as err:
        print(f"compare: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
