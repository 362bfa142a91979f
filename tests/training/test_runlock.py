"""One trainer per run folder: a second one fails at once naming the first and touches nothing;
a killed trainer never blocks the next; the lock file is no run file and is gone after a run."""

from __future__ import annotations

import logging
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from dmlstudy.training import TrainSettings, train
from dmlstudy.training.runlock import LOCK_NAME, RunLockedError, run_lock


def _snapshot(folder: Path) -> dict[str, tuple[int, int, bytes]]:
    return {
        p.relative_to(folder).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != LOCK_NAME
    }


@pytest.fixture
def finished(make_settings: Callable[..., TrainSettings], tmp_path: Path) -> TrainSettings:
    s = make_settings(tmp_path / "run", epochs=1, max_steps_per_epoch=1)
    train(s)
    return s


def test_second_trainer_fails_at_once_naming_the_holder(
    finished: TrainSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _snapshot(finished.out_dir)
    monkeypatch.setenv("DVC_STAGE", "train@synthetic-multi_similarity-0")
    with run_lock(finished.out_dir):  # the first trainer (another open file: flock conflicts)
        monkeypatch.delenv("DVC_STAGE")
        other = finished.model_copy(update={"epochs": 2})  # would replace the run if it could
        start = time.perf_counter()
        with pytest.raises(RunLockedError) as err:
            train(other)
        seconds = time.perf_counter() - start
    message = str(err.value)
    print(f"{seconds:.3f} s: {message}")
    assert seconds < 1.0
    assert f"{finished.out_dir} is being trained by another process (pid {os.getpid()}" in message
    assert platform.node() in message and "UTC" in message
    assert "dvc stage train@synthetic-multi_similarity-0" in message
    assert f"`kill {os.getpid()}`" in message and "resumes from its last checkpoint" in message
    assert _snapshot(finished.out_dir) == before  # nothing removed, rewritten or retrained
    assert not (finished.out_dir / LOCK_NAME).exists()  # released and removed by the holder


def test_a_trainer_in_another_process_is_refused_and_a_killed_one_never_blocks(
    finished: TrainSettings,
) -> None:
    code = (
        "import sys, time\n"
        "from dmlstudy.training.runlock import run_lock\n"
        "with run_lock(sys.argv[1]):\n"
        "    print('locked', flush=True)\n"
        "    time.sleep(600)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(finished.out_dir)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "locked\n"
        with pytest.raises(RunLockedError, match=rf"pid {proc.pid} on "):
            train(finished)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert (finished.out_dir / LOCK_NAME).exists()  # left by the killed holder ...
    assert train(finished)["history"]  # ... whose lock died with it: the run is reused
    assert not (finished.out_dir / LOCK_NAME).exists()


def test_a_left_lock_file_is_no_run_file(
    finished: TrainSettings, caplog: pytest.LogCaptureFixture
) -> None:
    (finished.out_dir / LOCK_NAME).write_text('{"pid": 1}')  # a trainer killed with -9
    with caplog.at_level(logging.WARNING):
        train(finished.model_copy(update={"max_steps_per_epoch": 2}))  # replaces the run
    replaced = [r.getMessage() for r in caplog.records if "replacing" in r.getMessage()]
    assert len(replaced) == 1 and LOCK_NAME not in replaced[0] and "left alone" not in replaced[0]
    assert sorted(p.name for p in finished.out_dir.iterdir()) == [
        "best.pt",
        "checkpoint.pt",
        "dvclive",
        "embeddings_test.npz",
        "embeddings_val.npz",
        "metrics.json",
    ]
