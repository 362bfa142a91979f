"""A run folder that exists: finished → reused, interrupted → resumed with exactly the new run's
outputs and one dvclive row per epoch, other settings / code → replaced with one log line."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

import dmlstudy.training.loop as loop
from dmlstudy.training import TrainSettings, train
from dmlstudy.training.checkpoint import atomic_save
from dmlstudy.training.fingerprint import code_fingerprint, data_fingerprint
from dmlstudy.training.rundir import retire_other_runs, retired_dir, settle_best

OUTPUTS = {
    "checkpoint.pt",
    "best.pt",
    "embeddings_val.npz",
    "embeddings_test.npz",
    "metrics.json",
    "dvclive",
}


def _no_training(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("an epoch was trained")


def _rows(out: Path, metric: str = "train/loss") -> pd.DataFrame:
    return pd.read_csv(out / "dvclive" / "plots" / "metrics" / f"{metric}.tsv", sep="\t")


def _replacements(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "replacing" in r.getMessage()]


@pytest.fixture(scope="module")
def finished(
    make_settings: Callable[..., TrainSettings], tmp_path_factory: pytest.TempPathFactory
) -> tuple[TrainSettings, dict[str, Any]]:
    s = make_settings(tmp_path_factory.mktemp("finished") / "run", epochs=3)
    return s, train(s)


def test_finished_run_is_reused_and_stray_run_files_removed(
    finished: tuple[TrainSettings, dict[str, Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s, metrics = finished
    (s.out_dir / "checkpoint.pt.tmp").write_bytes(b"torn")
    (s.out_dir / "best-epoch7.pending.pt").write_bytes(b"old")
    (s.out_dir / "notes.txt").write_text("mine")  # not a run file: left alone
    before = (s.out_dir / "metrics.json").read_bytes()
    monkeypatch.setattr(loop, "train_epoch", _no_training)
    again = train(s.model_copy(update={"progress": True, "divergence_check_every": 3}))
    assert again == json.loads(json.dumps(metrics))
    assert (s.out_dir / "metrics.json").read_bytes() == before
    assert {p.name for p in s.out_dir.iterdir()} == OUTPUTS | {"notes.txt"}
    (s.out_dir / "notes.txt").unlink()


def test_incomplete_finished_run_is_completed_from_its_checkpoint(
    make_settings: Callable[..., TrainSettings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = make_settings(tmp_path / "run", epochs=2)
    ref = train(s)
    (s.out_dir / "embeddings_test.npz").unlink()  # e.g. killed while writing the outputs
    monkeypatch.setattr(loop, "train_epoch", _no_training)
    again = train(s)
    assert again["test"] == ref["test"] and {p.name for p in s.out_dir.iterdir()} == OUTPUTS


def test_resumed_run_has_exactly_the_new_runs_outputs_and_dvclive_rows(
    finished: tuple[TrainSettings, dict[str, Any]],
    make_settings: Callable[..., TrainSettings],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ref_s, ref = finished
    s = make_settings(tmp_path / "run", epochs=3)
    real_log = loop.log_epoch

    def killed_before_logging_epoch_1(live: Any, record: dict[str, Any]) -> None:
        if record["epoch"] == 1:  # epoch 1's checkpoint is written, its row is not
            raise KeyboardInterrupt
        real_log(live, record)

    monkeypatch.setattr(loop, "log_epoch", killed_before_logging_epoch_1)
    with pytest.raises(KeyboardInterrupt):
        train(s)
    monkeypatch.setattr(loop, "log_epoch", real_log)
    rows = _rows(s.out_dir)
    assert list(rows["step"]) == [0]
    # An earlier writer's leftovers: a duplicated row, stale final outputs, a torn write.
    pd.concat([rows, rows]).to_csv(
        s.out_dir / "dvclive/plots/metrics/train/loss.tsv", sep="\t", index=False
    )
    (s.out_dir / "embeddings_val.npz").write_bytes(b"stale")
    (s.out_dir / "metrics.json").write_text("{}")
    (s.out_dir / "best.pt.tmp").write_bytes(b"torn")
    resumed = train(s)
    assert [h["session"] for h in resumed["history"]] == [0, 0, 1]  # epochs 0-1 not retrained
    assert [h["loss"] for h in resumed["history"]] == [h["loss"] for h in ref["history"]]
    assert resumed["test"] == ref["test"]
    for split in ("val", "test"):
        np.testing.assert_array_equal(
            np.load(s.out_dir / f"embeddings_{split}.npz")["embeddings"],
            np.load(ref_s.out_dir / f"embeddings_{split}.npz")["embeddings"],
        )
    assert {p.name for p in s.out_dir.iterdir()} == OUTPUTS
    rows = _rows(s.out_dir)
    assert list(rows["step"]) == [0, 1, 2]
    assert list(rows["loss"]) == [h["loss"] for h in resumed["history"]]
    assert list(_rows(s.out_dir, "val/map@r")["step"]) == [0, 1, 2]


@pytest.mark.parametrize("finish", [False, True])
def test_other_settings_replace_the_run_with_one_log_line(
    make_settings: Callable[..., TrainSettings],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    finish: bool,
) -> None:
    s = make_settings(tmp_path / "run")
    train(s, _stop_after_epoch=None if finish else 0)
    (s.out_dir / "notes.txt").write_text("mine")
    other = s.model_copy(update={"lr": 0.01, "epochs": 3})
    with caplog.at_level(logging.WARNING):
        metrics = train(other)
    (line,) = _replacements(caplog)
    assert str(s.out_dir) in line and "epochs, lr differ" in line and "notes.txt" in line
    assert [h["session"] for h in metrics["history"]] == [0, 0, 0]  # trained from scratch
    fresh = train(other.model_copy(update={"out_dir": tmp_path / "fresh"}))
    assert [h["loss"] for h in metrics["history"]] == [h["loss"] for h in fresh["history"]]
    assert {p.name for p in s.out_dir.iterdir()} == OUTPUTS | {"notes.txt"}


def test_changed_training_code_replaces_a_finished_run(
    make_settings: Callable[..., TrainSettings],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DVC reruns a persistent training stage when its code changes: the run must not be
    reused."""
    s = make_settings(tmp_path / "run", epochs=1, max_steps_per_epoch=1)
    train(s)
    real = loop.run_inputs
    monkeypatch.setattr(loop, "run_inputs", lambda d, *a: {**real(d, *a), "code": "edited"})
    with caplog.at_level(logging.WARNING):
        metrics = train(s)
    assert "training code differ" in _replacements(caplog)[0]
    assert metrics["inputs"]["code"] == "edited"


def test_fingerprints_follow_contents(tmp_path: Path, tiny_prepared: Path) -> None:
    assert code_fingerprint() == code_fingerprint()
    copy = tmp_path / "prepared"
    copy.mkdir()
    for f in tiny_prepared.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    assert data_fingerprint(copy) == data_fingerprint(tiny_prepared)
    meta = json.loads((copy / "meta.json").read_text())
    (copy / "meta.json").write_text(json.dumps({**meta, "name": "other"}))
    assert data_fingerprint(copy) != data_fingerprint(tiny_prepared)


def test_settle_best_promotes_only_what_the_checkpoint_selected(tmp_path: Path) -> None:
    atomic_save({"epoch": 0}, tmp_path / "best.pt")
    atomic_save({"epoch": 2}, tmp_path / "best-epoch2.pending.pt")
    settle_best(tmp_path, {"epoch": 1, "best_epoch": 0})  # killed before epoch 2's checkpoint
    assert torch.load(tmp_path / "best.pt")["epoch"] == 0
    assert not (tmp_path / "best-epoch2.pending.pt").exists()
    atomic_save({"epoch": 2}, tmp_path / "best-epoch2.pending.pt")
    settle_best(tmp_path, {"epoch": 2, "best_epoch": 2})  # killed after it
    assert torch.load(tmp_path / "best.pt")["epoch"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["best.pt"]


def test_retire_other_runs_keeps_the_asked_runs_and_sets_the_others_aside(
    make_settings: Callable[..., TrainSettings], tmp_path: Path
) -> None:
    root = tmp_path / "runs"
    keep = [make_settings(root / "a" / "seed0"), make_settings(root / "b" / "seed0")]
    for run in [*(s.out_dir for s in keep), root / "a" / "seed1", root / "old" / "seed0"]:
        run.mkdir(parents=True)
        (run / "metrics.json").write_text("{}")
    (root / "stray.csv").write_text("x")
    retire_other_runs(root, keep)
    left = sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))
    assert left == ["a", "a/seed0", "a/seed0/metrics.json", "b", "b/seed0", "b/seed0/metrics.json"]
    aside = sorted(p.relative_to(tmp_path).as_posix() for p in retired_dir(root).rglob("*"))
    assert aside == [
        "_retired/runs/a",
        "_retired/runs/a/seed1",
        "_retired/runs/a/seed1/metrics.json",
        "_retired/runs/old",
        "_retired/runs/old/seed0",
        "_retired/runs/old/seed0/metrics.json",
        "_retired/runs/stray.csv",
    ]
    retire_other_runs(tmp_path / "missing", keep)  # nothing there yet: nothing to do


def test_a_finished_run_no_longer_asked_for_survives_and_is_reused_when_asked_again(
    make_settings: Callable[..., TrainSettings],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An ablation arm removed from params.yaml, then put back: its finished run was set aside,
    not deleted, and comes back without training; one asked for with other settings stays
    aside (the trainer would replace it)."""
    root = tmp_path / "runs"
    a = make_settings(root / "a" / "seed0", epochs=1, max_steps_per_epoch=1)
    b = make_settings(root / "b" / "seed0", epochs=1, max_steps_per_epoch=1)
    train(a)
    finished = train(b)
    retire_other_runs(root, [a])  # b is no longer asked for
    assert not (root / "b").exists()
    assert (retired_dir(root) / "b" / "seed0" / "metrics.json").is_file()
    retire_other_runs(root, [a, b.model_copy(update={"lr": 0.5})])  # b with other settings
    assert (retired_dir(root) / "b" / "seed0" / "metrics.json").is_file()
    retire_other_runs(root, [a, b])  # b as it was: moved back, reused
    assert not (retired_dir(root) / "b" / "seed0").exists()
    monkeypatch.setattr(loop, "train_epoch", _no_training)
    assert train(b)["test"] == finished["test"]
