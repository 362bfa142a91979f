"""Divergence caught: NaN/inf, or the loss or the embedding norm blowing up, stops training.

Rule: step t diverged if |loss_t| > 1000 × max(L, 1) or the mean pre-normalisation embedding norm
n_t > 10000 × N, L and N the medians over the run's first 10 steps, each checked against those
before it (a blow-up at step 1 cannot inflate its own reference; the floor 1 spares a loss that
starts near 0). Healthy runs stay far below: every registered loss peaks at ≤ 13× / 2× on the
synthetic data (RSW, proxies at 1e5 × lr; the others ≤ 4×: tests/training/test_divergence.py),
RSW at 6.8× / 1.4× over Omniglot's 300 steps (benchmarks/divergence_headroom.py); Adam moves a
weight by about lr per step, so norms grow about linearly, not 1e4-fold.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOSS_BLOWUP = 1e3
NORM_BLOWUP = 1e4
EARLY_STEPS = 10


class TrainingDivergedError(FloatingPointError):
    """Training stopped: the loss or the embeddings diverged (the message says what is on disk)."""


class NonFiniteLossError(TrainingDivergedError):
    """The loss (or an embedding norm) became NaN or infinite."""


@dataclass
class DivergenceMonitor:
    """Checks (loss, embedding norm) per step; its ``state()`` goes into every checkpoint, so a
    resumed run compares with the same early level as an uninterrupted one.

    >>> m = DivergenceMonitor("npair")
    >>> m.check(epoch=0, first_step=0, losses=[4.0, 3.9], norms=[1.0, 1.1])
    >>> m.check(epoch=0, first_step=2, losses=[5e3], norms=[1.2])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    dmlstudy.training.divergence.TrainingDivergedError: training diverged: loss 5e+03 at epoch 0 ...
    """

    loss_name: str
    early_loss: list[float] = field(default_factory=list)
    early_norm: list[float] = field(default_factory=list)
    peak_loss_ratio: float = 0.0
    peak_norm_ratio: float = 0.0

    def state(self) -> dict[str, Any]:
        return {
            "early_loss": list(self.early_loss),
            "early_norm": list(self.early_norm),
            "peak_loss_ratio": self.peak_loss_ratio,
            "peak_norm_ratio": self.peak_norm_ratio,
        }

    @classmethod
    def from_state(cls, loss_name: str, state: dict[str, Any] | None) -> DivergenceMonitor:
        return cls(loss_name, **(state or {}))

    def check(
        self, *, epoch: int, first_step: int, losses: list[float], norms: list[float]
    ) -> None:
        """Check consecutive steps ``first_step, first_step + 1, ...``; raise at the first bad
        one."""
        for i, (loss, norm) in enumerate(zip(losses, norms, strict=True)):
            where = f"at epoch {epoch} (0-based), step {first_step + i}"
            name = f"loss {self.loss_name!r}"
            if not math.isfinite(loss):
                raise NonFiniteLossError(f"non-finite loss {loss} {where}, {name}")
            if not math.isfinite(norm):
                raise NonFiniteLossError(f"non-finite embedding norm {norm} {where}, {name}")
            if self.early_loss:
                loss_ref = max(statistics.median(self.early_loss), 1.0)
                norm_ref = statistics.median(self.early_norm)
                loss_ratio = abs(loss) / loss_ref
                norm_ratio = norm / norm_ref if norm_ref > 0 else 0.0
                self.peak_loss_ratio = max(self.peak_loss_ratio, loss_ratio)
                self.peak_norm_ratio = max(self.peak_norm_ratio, norm_ratio)
                if loss_ratio > LOSS_BLOWUP:
                    raise TrainingDivergedError(
                        f"training diverged: loss {loss:.3g} {where} is over {LOSS_BLOWUP:g} x "
                        f"its early level {loss_ref:.3g} (median |loss| of the first steps, at "
                        f"least 1), {name}"
                    )
                if norm_ratio > NORM_BLOWUP:
                    raise TrainingDivergedError(
                        f"training diverged: embedding norm {norm:.3g} (before normalisation) "
                        f"{where} is over {NORM_BLOWUP:g} x its early level {norm_ref:.3g} "
                        f"(median of the first steps), {name}"
                    )
            if len(self.early_loss) < EARLY_STEPS:
                self.early_loss.append(abs(loss))
                self.early_norm.append(norm)


def explain(
    err: TrainingDivergedError, last_epoch: int, checkpoint: Path, settings: Any, loss_fn: Any
) -> None:
    """Complete ``err``'s message with what is on disk and the settings to lower."""
    err.args = (f"{err}; {on_disk(last_epoch, checkpoint)}. To fix: {fix_hint(settings, loss_fn)}",)


def fix_hint(settings: Any, loss_fn: Any) -> str:
    """The settings to lower, with their values, e.g. ``lower lr (now 1e+06) ...``."""
    knobs = [f"lr (now {settings.lr:g})"]
    multiplier = getattr(loss_fn, "proxy_lr_multiplier", None)
    if multiplier is not None:
        knobs.append(f"{settings.loss}.proxy_lr_multiplier (now {multiplier:g})")
    clip = "or set grad_clip" if settings.grad_clip is None else "or lower grad_clip"
    return f"lower {' or '.join(knobs)}, {clip}, or check the loss parameters"


def on_disk(last_epoch: int, checkpoint: Path) -> str:
    """What a rerun would find: no checkpoint yet, or the kept epoch's checkpoint."""
    if last_epoch < 0:
        return "no checkpoint yet: nothing to resume"
    return (
        f"epoch {last_epoch}'s checkpoint is kept ({checkpoint}): the same settings would resume "
        "from it (and diverge the same way), changed settings replace the run"
    )
