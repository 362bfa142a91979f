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
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from dmlstudy.config import StudyConfig, load_config
from dmlstudy.study.paper import DVCFILE, main_seeds


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


def _flow(values: dict[str, Any]) -> str:
    """``values`` as one flow mapping, params.yaml's style (``{lr: 0.001, train: {...}}``)."""
    return yaml.safe_dump(values, default_flow_style=True, width=10**6, sort_keys=False).strip()


def _block_end(lines: list[str], start: int, indent: int) -> int:
    """Index after the last line of the block opened at ``start`` (lines indented deeper than
    ``indent``; blank and comment lines inside it belong to it, trailing ones do not)."""
    end = start + 1
    for i in range(start + 1, len(lines)):
        stripped = lines[i].strip()
        if not stripped or stripped.startswith("#"):
            continue
        depth = len(lines[i]) - len(lines[i].lstrip())
        if depth < indent or (depth == indent and not stripped.startswith("- ")):
            break  # (a `- ` item at the key's own indent: the key's indentless sequence)
        end = i + 1
    return end


def _find(lines: list[str], key: str, indent: int, lo: int, hi: int) -> int | None:
    pattern = re.compile(rf"^ {{{indent}}}{re.escape(key)}:(\s|$)")
    return next((i for i in range(lo, hi) if pattern.match(lines[i])), None)


def write_winner(params_file: Path, loss: str, dataset: str, values: dict[str, Any]) -> None:
    """``losses.<loss>.per_dataset.<dataset> = values`` and ``loss`` out of ``study.untuned``,
    edited in params.yaml's text (its comments and layout kept: a YAML round trip reflows the
    whole file); the result is parsed back and must be exactly that change, else nothing is
    written and the error says what to edit by hand."""
    text = params_file.read_text()
    expected = yaml.safe_load(text)
    section = expected["losses"][loss]
    per_dataset = dict(section.get("per_dataset") or {})
    per_dataset[dataset] = values
    section["per_dataset"] = per_dataset
    if loss in (expected["study"].get("untuned") or []):
        expected["study"]["untuned"] = [x for x in expected["study"]["untuned"] if x != loss]
    lines = text.splitlines(keepends=True)
    top = _find(lines, "losses", 0, 0, len(lines))
    at = None if top is None else _find(lines, loss, 2, top + 1, _block_end(lines, top, 0))
    if at is None:
        raise CompareError(f"params.yaml has no block `losses:` / `  {loss}:` to edit")
    end = _block_end(lines, at, 2)
    pd_at = _find(lines, "per_dataset", 4, at + 1, end)
    if pd_at is None:
        new = f"    per_dataset:\n      {dataset}: {_flow(values)}\n"
        lines.insert(end, new)
    else:
        pd_end = _block_end(lines, pd_at, 4)
        if pd_end == pd_at + 1:  # inline (`per_dataset: {}` / `{omniglot: ...}`) or empty
            lines[pd_at] = f"    per_dataset: {_flow(per_dataset)}\n"
        else:
            d_at = _find(lines, dataset, 6, pd_at + 1, pd_end)
            entry = f"      {dataset}: {_flow(values)}\n"
            if d_at is None:
                lines.insert(pd_end, entry)
            else:
                lines[d_at : _block_end(lines, d_at, 6)] = [entry]
    study = _find(lines, "study", 0, 0, len(lines))
    if study is not None and "untuned" in expected["study"]:
        u = _find(lines, "untuned", 2, study + 1, _block_end(lines, study, 0))
        if u is not None:
            comment = lines[u].split("#", 1)[1] if "#" in lines[u] else ""
            kept = f"  untuned: [{', '.join(expected['study']['untuned'])}]"
            line = f"{kept}  # {comment.strip()}\n" if comment else f"{kept}\n"
            lines[u : _block_end(lines, u, 2)] = [line]
    result = "".join(lines)
    try:
        same = yaml.safe_load(result) == expected
    except yaml.YAMLError:
        same = False
    if not same:
        raise CompareError(
            f"could not edit params.yaml safely: set losses.{loss}.per_dataset.{dataset} to "
            f"{_flow(values)} and take {loss} out of study.untuned by hand"
        )
    params_file.write_text(result)


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
    write_winner(params_file, loss, dataset, values)
    print(f"== losses.{loss}.per_dataset.{dataset} = {values} (written to {params_file})")
    config = load_config(params_file)
    stages = [f"{DVCFILE}:main@{dataset}-{loss}-{s}" for s in main_seeds(config, profile)]
    _run([py, "-m", "dvc", "repro", *stages], "paper-grade runs", root)
    # --single-item: the report alone (its dependency, results/paper/runs, is every stage's output)
    _run([py, "-m", "dvc", "repro", "-s", f"{DVCFILE}:report@{dataset}"], "report", root)
    print(f"== report: reports/paper/{dataset}.html, results/paper/{dataset}/table.csv")


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
