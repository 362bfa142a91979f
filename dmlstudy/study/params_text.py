"""Edits of params.yaml made in its text, so that its comments and layout stay (a YAML round
trip reflows the whole file): the tuning campaign's winners written into ``losses.<loss>.
per_dataset.<dataset>`` (``make compare``, :mod:`dmlstudy.study.apply_winners`). Every edit is
parsed back and must be exactly the change asked for, else nothing is written and the error says
what to set by hand.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml


class ParamsEditError(ValueError):
    """An edit that could not be made safely; the message says what to set by hand."""


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


def _find_path(lines: list[str], keys: tuple[str, ...]) -> int | None:
    """The line of the last of ``keys``, each a block key inside the one before it (indented 0,
    2, 4, ...: params.yaml's layout), or None."""
    at: int | None = None
    lo, hi = 0, len(lines)
    for depth, key in enumerate(keys):
        at = _find(lines, key, 2 * depth, lo, hi)
        if at is None:
            return None
        lo, hi = at + 1, _block_end(lines, at, 2 * depth)
    return at


def write_winner(
    params_file: Path,
    loss: str,
    dataset: str,
    values: dict[str, Any],
    comment: str | None = None,
) -> None:
    """``losses.<loss>.per_dataset.<dataset> = values`` and ``loss`` out of ``study.untuned``
    (``comment``: the ``per_dataset:`` line's comment, replacing the one there)."""
    text = params_file.read_text()
    expected = yaml.safe_load(text)
    section = expected["losses"][loss]
    per_dataset = dict(section.get("per_dataset") or {})
    per_dataset[dataset] = values
    section["per_dataset"] = per_dataset
    if loss in (expected["study"].get("untuned") or []):
        expected["study"]["untuned"] = [x for x in expected["study"]["untuned"] if x != loss]
    lines = text.splitlines(keepends=True)
    at = _find_path(lines, ("losses", loss))
    if at is None:
        raise ParamsEditError(f"params.yaml has no block `losses:` / `  {loss}:` to edit")
    _set_per_dataset(lines, at, 2, dataset, values, per_dataset, comment)
    study = _find(lines, "study", 0, 0, len(lines))
    if study is not None and "untuned" in expected["study"]:
        u = _find(lines, "untuned", 2, study + 1, _block_end(lines, study, 0))
        if u is not None:
            note = lines[u].split("#", 1)[1] if "#" in lines[u] else ""
            kept = f"  untuned: [{', '.join(expected['study']['untuned'])}]"
            line = f"{kept}  # {note.strip()}\n" if note else f"{kept}\n"
            lines[u : _block_end(lines, u, 2)] = [line]
    by_hand = (
        f"set losses.{loss}.per_dataset.{dataset} to {_flow(values)} and take {loss} out of "
        "study.untuned"
    )
    _checked_write(params_file, lines, expected, by_hand)


def _set_per_dataset(
    lines: list[str],
    at: int,
    indent: int,
    dataset: str,
    values: dict[str, Any],
    per_dataset: dict[str, Any],
    comment: str | None,
) -> None:
    """In the block whose key line is ``lines[at]`` (at ``indent``): its ``per_dataset`` mapping
    with ``dataset: values`` (``per_dataset``: the whole mapping after the edit; ``comment``: the
    ``per_dataset:`` line's comment, replacing the one there)."""
    pad, deeper = " " * (indent + 2), " " * (indent + 4)
    end = _block_end(lines, at, indent)
    pd_at = _find(lines, "per_dataset", indent + 2, at + 1, end)
    if pd_at is None:
        pd_at = end
        lines[end:end] = [f"{pad}per_dataset:\n", f"{deeper}{dataset}: {_flow(values)}\n"]
    elif _block_end(lines, pd_at, indent + 2) == pd_at + 1:  # inline (`{}`, `{omniglot: ...}`)
        lines[pd_at] = f"{pad}per_dataset: {_flow(per_dataset)}\n"  # (its comment goes)
    else:
        pd_end = _block_end(lines, pd_at, indent + 2)
        d_at = _find(lines, dataset, indent + 4, pd_at + 1, pd_end)
        entry = f"{deeper}{dataset}: {_flow(values)}\n"
        if d_at is None:
            lines.insert(pd_end, entry)
        else:
            lines[d_at : _block_end(lines, d_at, indent + 4)] = [entry]
    if comment is not None:
        lines[pd_at] = _with_comment(lines[pd_at], comment)


def write_arm_winner(
    params_file: Path,
    ablation: str,
    arm: str,
    dataset: str,
    values: dict[str, Any],
    comment: str | None = None,
) -> None:
    """``ablations.<ablation>.variants.<arm>.per_dataset.<dataset> = values``: the campaign's
    winner for an ablation arm with its own search space (``comment``: the ``per_dataset:``
    line's comment, replacing the one there)."""
    text = params_file.read_text()
    expected = yaml.safe_load(text)
    variant = expected["ablations"][ablation]["variants"][arm]
    per_dataset = dict(variant.get("per_dataset") or {})
    per_dataset[dataset] = values
    variant["per_dataset"] = per_dataset
    lines = text.splitlines(keepends=True)
    at = _find_path(lines, ("ablations", ablation, "variants", arm))
    by_hand = f"set ablations.{ablation}.variants.{arm}.per_dataset.{dataset} to {_flow(values)}"
    if at is None:
        raise ParamsEditError(f"params.yaml has no block for ablations.{ablation}: {by_hand}")
    _set_per_dataset(lines, at, 6, dataset, values, per_dataset, comment)
    _checked_write(params_file, lines, expected, by_hand)


def _with_comment(line: str, comment: str) -> str:
    """``line`` with its trailing ``# ...`` comment replaced by ``comment`` (aligned as
    params.yaml aligns them, at column 34 when the line is shorter)."""
    code = line.rstrip("\n").split(" #", 1)[0].rstrip()
    return f"{code:<33} # {comment}\n" if len(code) < 33 else f"{code}  # {comment}\n"


def write_tuning_loss_params(params_file: Path, loss: str, values: dict[str, Any]) -> None:
    """``tuning.loss_params.<loss> = values`` (what every search trial of ``loss`` trains with:
    a regularizer's tuned ``base_params``), edited in the text as :func:`write_winner`."""
    text = params_file.read_text()
    expected = yaml.safe_load(text)
    tuning = expected.get("tuning") or {}
    loss_params = dict(tuning.get("loss_params") or {})
    loss_params[loss] = values
    tuning["loss_params"] = loss_params
    lines = text.splitlines(keepends=True)
    at = _find_path(lines, ("tuning", "loss_params"))
    if at is None:
        raise ParamsEditError("params.yaml has no `tuning:` / `  loss_params:` line to edit")
    end = _block_end(lines, at, 2)
    if end == at + 1:  # inline (`loss_params: {}`): the whole mapping on its line
        note = lines[at].rstrip("\n").split(" #", 1)
        line = f"  loss_params: {_flow(loss_params)}\n"
        lines[at] = _with_comment(line, note[1].strip()) if len(note) == 2 else line
    else:
        entry = f"    {loss}: {_flow(values)}\n"
        e_at = _find(lines, loss, 4, at + 1, end)
        if e_at is None:
            lines.insert(end, entry)
        else:
            lines[e_at : _block_end(lines, e_at, 4)] = [entry]
    by_hand = f"set tuning.loss_params.{loss} to {_flow(values)}"
    _checked_write(params_file, lines, expected, by_hand)


def _checked_write(path: Path, lines: list[str], expected: Any, by_hand: str) -> None:
    """Write ``lines`` to ``path`` if they parse to ``expected``; else write nothing and say
    ``by_hand``."""
    result = "".join(lines)
    try:
        same = yaml.safe_load(result) == expected
    except yaml.YAMLError:
        same = False
    if not same:
        raise ParamsEditError(f"could not edit params.yaml safely: {by_hand} by hand")
    path.write_text(result)
