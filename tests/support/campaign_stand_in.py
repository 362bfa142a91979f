"""A stand-in trainer for the tuning campaign's tests (no training): ``StandIn``."""

from __future__ import annotations

import json
import threading
from typing import Any


class Killed(BaseException):
    """A worker killed mid-trial: optuna neither catches it nor tells the trial (RUNNING)."""


class StandIn:
    """``trainer(settings, on_epoch)``: ``epochs[loss]`` epochs (the plateau stop), val MAP@R
    ``lr * 100 * (1 - 0.5 ** (epoch + 1)) + 0.001 * seed``; the epoch reached is kept in the run
    folder (the checkpoint), so a rerun of the folder resumes there, and a finished run is
    reused. ``kill`` (run folder name, epoch): raise Killed there, once."""

    def __init__(self, epochs: dict[str, int], kill: tuple[str, int] | None = None) -> None:
        self.epochs, self.kill = epochs, kill
        self.trained: list[tuple[str, int]] = []  # (run folder, epoch) of every epoch trained
        self.searched: list[tuple[str, int]] = []  # those trained for a search trial (on_epoch)
        self.lock = threading.Lock()

    def value(self, s, epoch: int) -> float:
        return s.lr * 100 * (1 - 0.5 ** (epoch + 1)) + 0.001 * s.seed

    def __call__(self, s, on_epoch) -> dict[str, Any]:
        s.out_dir.mkdir(parents=True, exist_ok=True)
        done, ckpt = s.out_dir / "metrics.json", s.out_dir / "checkpoint"
        if done.is_file():
            return json.loads(done.read_text())
        n = self.epochs[s.loss]
        start = int(ckpt.read_text()) if ckpt.is_file() else 0
        for epoch in range(start, n):
            if self.kill == (s.out_dir.name, epoch):
                self.kill = None
                raise Killed
            with self.lock:
                self.trained.append((str(s.out_dir), epoch))
                if on_epoch is not None:  # a search trial reports; a confirmation does not
                    self.searched.append((str(s.out_dir), epoch))
            ckpt.write_text(str(epoch + 1))  # saved before on_epoch, as training/loop.py does
            if on_epoch is not None:
                on_epoch({"epoch": epoch, "val": {"map@r": self.value(s, epoch)}})
        best = self.value(s, n - 1)
        metrics = {
            "val": {"map@r": best, "recall@1": 0.5},
            "best_epoch": n - 1,
            "epochs_run": n,
            "converged": True,
            "train_seconds": 0.1 * n,
        }
        done.write_text(json.dumps(metrics))
        return metrics
