"""A real ``kill -9`` in the middle of a checkpoint write, then resume: same result as
uninterrupted."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from dmlstudy.training import TrainSettings, train
from dmlstudy.training.checkpoint import load_checkpoint

# Runs train() in a child that SIGKILLs itself after writing the epoch-1 checkpoint to its tmp file
# but before the atomic rename — the worst moment for a non-atomic writer.
CHILD = r"""
import json, os, signal, sys
import dmlstudy.training.checkpoint as ck
from dmlstudy.training import TrainSettings, train
real, calls = ck._replace, []
def killing_replace(tmp, path):
    if path.name == "checkpoint.pt":
        calls.append(path)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGKILL)
    real(tmp, path)
ck._replace = killing_replace
train(TrainSettings(**json.loads(sys.argv[1])))
"""


@pytest.mark.slow
def test_sigkill_during_checkpoint_write_then_resume(
    make_settings: Callable[..., TrainSettings], tmp_path: Path
) -> None:
    ref = make_settings(tmp_path / "ref", loss="proxy_anchor", epochs=3)
    ref_metrics = train(ref)
    s = make_settings(tmp_path / "killed", loss="proxy_anchor", epochs=3)
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(s.model_dump(mode="json"))],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert (s.out_dir / "checkpoint.pt.tmp").is_file()  # the un-renamed epoch-1 write
    assert load_checkpoint(s.out_dir / "checkpoint.pt")["state"]["epoch"] == 0
    metrics = train(s)
    for split in ("val", "test"):
        a = np.load(ref.out_dir / f"embeddings_{split}.npz")["embeddings"]
        b = np.load(s.out_dir / f"embeddings_{split}.npz")["embeddings"]
        np.testing.assert_array_equal(a, b)
    assert metrics["test"] == ref_metrics["test"]
    assert [h["loss"] for h in metrics["history"]] == [h["loss"] for h in ref_metrics["history"]]
