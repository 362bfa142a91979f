"""What a params.yaml edit changes, run by run: one key decides each value, and an edit that a more
specific key shadows is an error naming both keys, not a rerun that silently keeps the old value.

A run's value comes from the last of its layers that sets it (:mod:`dmlstudy.study.runs`):
``losses.contrastive.neg_margin`` (published) is shadowed by
``losses.contrastive.per_dataset.omniglot.neg_margin`` (tuned) on Omniglot. An *edit* is a key
whose value differs from the committed params.yaml (``git show HEAD:params.yaml``: what
``dvc exp run -S`` and a hand edit both leave), plus any published loss value that differs from
the loss's constructor default (so the rule holds outside git too). An edit that every run
reading it overrides is an error; one that some runs override is a warning naming them.

>>> changed_keys({"a": {"b": 1, "c": [1, 2]}}, {"a": {"b": 2, "c": [1, 2], "d": 3}})
['a.b', 'a.d']
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dmlstudy.config import ParamsError, StudyConfig, read_params
from dmlstudy.study.runs import RunSpec, deciding_keys, merge, study_runs


def changed_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Leaf key paths of ``new`` whose value differs from ``old`` (lists are leaves; keys only
    in ``old`` are left out: a deleted key decides nothing)."""
    if not isinstance(new, dict):
        return [] if old == new else [prefix]
    old = old if isinstance(old, dict) else {}
    out: list[str] = []
    for key, value in new.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        out += changed_keys(old.get(key), value, path) if key in old else _leaves(value, path)
    return out


def _leaves(value: Any, prefix: str) -> list[str]:
    if isinstance(value, dict) and value:
        return [p for k, v in value.items() for p in _leaves(v, f"{prefix}.{k}")]
    return [prefix]


def committed_params(path: str | Path) -> dict[str, Any] | None:
    """params.yaml as committed at git's HEAD, or None outside a git work tree (or untracked)."""
    path = Path(path).resolve()
    try:
        top = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"],
            cwd=path.parent,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        shown = subprocess.run(
            ["git", "show", f"HEAD:{path.relative_to(Path(top).resolve()).as_posix()}"],
            cwd=top,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, ValueError, subprocess.CalledProcessError):
        return None
    committed = read_params(shown)
    return committed if isinstance(committed, dict) else None


def published_departures(config: StudyConfig) -> list[str]:
    """``losses.<loss>.<key>`` of the study's losses whose value is not the constructor's default
    (the published value docs/losses.md gives)."""
    from dmlstudy.losses import loss_hyperparameters

    return [
        f"losses.{loss}.{key}"
        for loss in config.study.losses
        for key, value in config.published_loss_params(loss).items()
        if value is not None and value != loss_hyperparameters(loss).get(key)
    ]


@dataclass
class EditEffect:
    """Where the edited ``key`` decides the value, and where a more specific key overrides it."""

    key: str
    value: Any
    decides: list[str] = field(default_factory=list)  # run labels
    shadowed: dict[str, list[str]] = field(default_factory=dict)  # deciding key -> run labels

    def describe(self) -> str:
        parts = []
        if self.decides:
            parts.append(f"decides {len(self.decides)} run(s): {_runs(self.decides)}")
        for key, runs in self.shadowed.items():
            parts.append(f"shadowed by {key} in {len(runs)} run(s): {_runs(runs)}")
        return f"{self.key} = {self.value!r}: " + ";\n      ".join(parts)


def _runs(labels: list[str], shown: int = 4) -> str:
    more = f" and {len(labels) - shown} more" if len(labels) > shown else ""
    return ", ".join(labels[:shown]) + more


def edit_effects(
    config: StudyConfig, keys: list[str], runs: list[RunSpec] | None = None
) -> list[EditEffect]:
    """For each of ``keys`` read by a run of the study, where it decides and where it is
    shadowed (keys no run reads are left out)."""
    runs = study_runs(config) if runs is None else runs
    effects = {key: EditEffect(key, None) for key in keys}
    for run in runs:
        for layers in run.layers(config):
            deciding = deciding_keys(layers)
            final = merge(layers)
            for where, values in layers:
                for setting, value in values.items():
                    effect = effects.get(f"{where}.{setting}")
                    if effect is None:
                        continue
                    effect.value = value
                    if deciding[setting] == effect.key:
                        effect.decides.append(run.label)
                    else:
                        shadow = f"{deciding[setting]} (= {final[setting]!r})"
                        effect.shadowed.setdefault(shadow, []).append(run.label)
    return [e for e in effects.values() if e.decides or e.shadowed]


def check_edits(config: StudyConfig, params_path: str | Path) -> list[str]:
    """Lines for check_params to print: what each edit since the last commit changes, run by run
    (with a warning where more specific keys override it in some runs). Raises ``ParamsError``
    for an edit no run takes, naming the keys that shadow it. The runs are every study's
    (:meth:`~dmlstudy.config.StudyConfig.everything`: the paper-grade study's losses too)."""
    config = config.everything()
    committed = committed_params(params_path)
    lines: list[str] = []
    if committed is None:
        keys: list[str] = []
        lines.append(
            f"{params_path}: no committed version to compare with (not in a git work tree): "
            "only published loss values that more specific keys override are checked"
        )
    else:
        keys = changed_keys(committed, read_params(Path(params_path).read_text()))
    keys += [k for k in published_departures(config) if k not in keys]
    effects = edit_effects(config, keys)
    errors = [e for e in effects if not e.decides]
    if errors:
        raise ParamsError(
            "edits that no run takes (a more specific key decides every run that reads them):\n"
            + "\n".join(
                f"  {e.describe()}. Edit "
                + " / ".join(k.split(" (=")[0] for k in e.shadowed)
                + f" instead (or delete it to let {e.key} decide)"
                for e in errors
            )
        )
    if effects:
        lines.append("what the params.yaml edits change (since the last commit):")
        for e in effects:
            warn = "WARNING: " if e.shadowed else ""
            lines.append(f"  {warn}{e.describe()}")
    return lines
