"""A run folder before training: reuse it, resume it, or replace it (one rule for every caller).

Training folders are ``persist: true`` DVC outputs, so a rerun finds the previous run's files:
- ``metrics.json`` with the same settings and inputs (:mod:`.fingerprint`) and every final output
  present: the finished run is reused, nothing is trained;
- ``checkpoint.pt`` with the same settings and inputs: training resumes after its epoch;
- other settings or inputs (params.yaml or the code changed, which is why DVC reruns the stage):
  the run is replaced — its files are removed, with one log line naming what differs. Removed,
  not moved aside: a finished run that a stage produced stays in DVC's cache (``dvc exp apply`` /
  ``dvc checkout`` restore it), while a copy kept next to the folder would become part of the
  stage's output or of the evaluate stage's dependency, and grow with every ``dvc exp run -S``.
Whatever the case, the folder then holds only files of the run about to be written.

Where a run's folder is (:func:`run_path`) lives here too: the study's run specs, its analysis
and its reports all find runs by it.

>>> run_path("work/runs/omniglot", "triplet", 2).as_posix()
'work/runs/omniglot/triplet/seed2'
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dmlstudy.training.checkpoint import load_checkpoint
from dmlstudy.training.fingerprint import INPUT_NAMES, run_inputs
from dmlstudy.training.runlock import LOCK_NAME
from dmlstudy.training.settings import TrainSettings

#: One run's folder below a runs root; dvc.yaml's train stage writes the same layout
#: (tests/pipeline/test_notebooks_and_dvc_yaml.py checks that they agree).
RUN_LAYOUT = "{loss}/seed{seed}"


def run_path(runs_root: str | Path, loss: str, seed: int) -> Path:
    """Folder of one training run below ``runs_root``."""
    return Path(runs_root) / RUN_LAYOUT.format(loss=loss, seed=seed)


log = logging.getLogger(__name__)

# Settings that may differ between a run and its resumption (they do not change the result).
RESUME_FREE_KEYS = ("progress", "out_dir", "divergence_check_every")
#: Files and folders a run writes (a ``.tmp`` suffix: an interrupted atomic write). The trainer's
#: lock (:data:`.runlock.LOCK_NAME`) is none: never removed here, never named as a stray.
RUN_FILES = ("checkpoint.pt", "best.pt", "metrics.json", "embeddings_val.npz",
             "embeddings_test.npz", "dvclive")  # fmt: skip
PENDING_BEST = "best-epoch{epoch}.pending.pt"


def settings_diff(stored: dict[str, Any], s: TrainSettings) -> list[str]:
    """Sorted keys whose stored value differs from ``s`` (``RESUME_FREE_KEYS`` aside).

    >>> s = TrainSettings(prepared_dir="p", out_dir="o", loss="ms")
    >>> settings_diff({**s.model_dump(mode="json"), "lr": 1.0, "out_dir": "x"}, s)
    ['lr']
    """
    now = s.model_dump(mode="json")
    return sorted(
        k
        for k in set(stored) | set(now)
        if k not in RESUME_FREE_KEYS and stored.get(k) != now.get(k)
    )


def run_diff(stored: dict[str, Any], s: TrainSettings, inputs: dict[str, str]) -> list[str]:
    """What differs between a stored run (checkpoint or metrics.json) and the run asked for."""
    before = stored.get("inputs") or {}
    changed = [INPUT_NAMES[k] for k in inputs if before.get(k) != inputs[k]]
    return settings_diff(stored.get("settings") or {}, s) + changed


def final_outputs(s: TrainSettings) -> tuple[str, ...]:
    """Files a finished run of ``s`` has (dvclive/ and checkpoint.pt aside)."""
    splits = ("val", "test") if s.evaluate_test else ("val",)
    return ("metrics.json", "best.pt", *(f"embeddings_{x}.npz" for x in splits))


@dataclass
class RunStart:
    """How :func:`open_run` found the folder: ``finished`` metrics, a ``checkpoint``, or neither."""

    finished: dict[str, Any] | None = None
    checkpoint: dict[str, Any] | None = None


def open_run(s: TrainSettings, inputs: dict[str, str], device: torch.device) -> RunStart:
    """Reuse, resume or replace ``s.out_dir`` (module docstring); create it if missing."""
    out = s.out_dir
    out.mkdir(parents=True, exist_ok=True)
    metrics = _read_metrics(out / "metrics.json")
    if metrics is not None:
        diff = run_diff(metrics, s, inputs)
        if diff:
            _replace(out, diff)
            return RunStart()
        if all((out / name).is_file() for name in final_outputs(s)):
            _keep_only(out, {*final_outputs(s), "checkpoint.pt", "dvclive"})
            log.info("%s: reusing the finished run (same settings and inputs)", out)
            return RunStart(finished=metrics)
    ckpt_path = out / "checkpoint.pt"
    if not ckpt_path.is_file():
        _keep_only(out, set())  # a run killed before its first checkpoint: nothing to resume
        return RunStart()
    ckpt = load_checkpoint(ckpt_path, map_location=device)
    diff = run_diff(ckpt, s, inputs)
    if diff:
        _replace(out, diff)
        return RunStart()
    settle_best(out, ckpt["state"])
    _keep_only(out, {"checkpoint.pt", "best.pt"})  # the rest is rewritten from the checkpoint
    log.info("%s: resuming after epoch %d's checkpoint", out, ckpt["state"]["epoch"])
    return RunStart(checkpoint=ckpt)


def settle_best(out: Path, state: dict[str, Any]) -> None:
    """Make ``best.pt`` agree with the checkpoint's ``best_epoch``: a new best model is written as
    ``best-epoch<e>.pending.pt`` before the checkpoint and becomes ``best.pt`` after it, so a kill
    in between leaves the previous best.pt; the pending file is promoted if the checkpoint
    selected it, else dropped."""
    for pending in out.glob(PENDING_BEST.format(epoch="*")):
        epoch = int(pending.name.removeprefix("best-epoch").split(".")[0])
        if epoch == state["best_epoch"] and epoch <= state["epoch"]:
            os.replace(pending, out / "best.pt")
        else:
            pending.unlink()


#: Where runs no longer asked for go (:func:`retire_other_runs`), next to the stage output.
RETIRED = "_retired"


def retired_dir(root: str | Path) -> Path:
    """``<root's parent>/_retired/<root's name>``: outside the persistent stage output ``root``,
    so retired runs neither grow that output nor change what a later stage reads.

    >>> retired_dir("work/ablations/omniglot/m_per_class").as_posix()
    'work/ablations/omniglot/_retired/m_per_class'
    """
    root = Path(root)
    return root.parent / RETIRED / root.name


def retire_other_runs(root: str | Path, asked: list[TrainSettings]) -> None:
    """Move what ``root`` holds besides the run folders of ``asked`` (and the folders above them)
    to :func:`retired_dir`: runs of variants or losses no longer in params.yaml, in a persistent
    stage output, are kept, not deleted. A retired run asked for again with the same settings and
    inputs moves back, and the trainer reuses it."""
    root = Path(os.path.normpath(root))
    keep = {Path(os.path.normpath(s.out_dir)) for s in asked}
    parents = {p for r in keep for p in r.parents}
    retired: list[str] = []

    def walk(folder: Path) -> None:
        for entry in sorted(folder.iterdir()):
            entry = Path(os.path.normpath(entry))
            if entry in keep:
                continue
            if entry in parents and entry.is_dir():
                walk(entry)
                continue
            rel = entry.relative_to(root)
            dest = retired_dir(root) / rel
            n = 1
            while dest.exists():  # retired before: keep both
                dest = dest.with_name(f"{rel.name}.{n}")
                n += 1
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(entry, dest)
            retired.append(f"{rel.as_posix()} -> {dest.as_posix()}")

    if root.is_dir():
        walk(root)
    if retired:
        log.warning("%s: runs no longer asked for, kept aside: %s", root, ", ".join(retired))
    for s in asked:
        _unretire(root, s)


def _unretire(root: Path, s: TrainSettings) -> None:
    """Move a retired run of ``s`` back if ``s.out_dir`` has no run and it has the same settings
    and inputs (else it stays retired: the trainer would replace it)."""
    out = Path(os.path.normpath(s.out_dir))
    try:
        source = retired_dir(root) / out.relative_to(root)
    except ValueError:
        return
    metrics = _read_metrics(source / "metrics.json")
    if metrics is None or (out.exists() and any(out.iterdir())):
        return
    try:
        same = not run_diff(metrics, s, run_inputs(s.prepared_dir, s.loss, s.loss_params))
    except (OSError, ValueError):  # no prepared data to compare with: leave it retired
        return
    if same:
        if out.exists():
            out.rmdir()
        out.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, out)
        log.info("%s: the retired run is asked for again; moved back from %s", out, source)


def _read_metrics(path: Path) -> dict[str, Any] | None:
    """A finished run's metrics.json, or None (absent, or not written by :func:`finalize`)."""
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return metrics if isinstance(metrics, dict) and "settings" in metrics else None


def _is_run_file(name: str) -> bool:
    base = name.removesuffix(".tmp")
    pending = base.startswith("best-epoch") and base.endswith(".pending.pt")
    return base in RUN_FILES or pending


def _keep_only(out: Path, keep: set[str]) -> list[str]:
    """Remove the run files of ``out`` not in ``keep``; files that are no run's are left."""
    removed = []
    for entry in sorted(out.iterdir()):
        if entry.name not in keep and _is_run_file(entry.name):
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
            removed.append(entry.name)
    return removed


def _replace(out: Path, diff: list[str]) -> None:
    removed = _keep_only(out, set())
    others = sorted(p.name for p in out.iterdir() if p.name != LOCK_NAME)
    log.warning(
        "%s: replacing a run whose %s differ; removed %s%s",
        out,
        ", ".join(diff),
        ", ".join(removed),
        f" (left alone, not run files: {', '.join(others)})" if others else "",
    )
