"""Divergence caught: NaN/inf, or the loss or the embedding norm blowing up, stops training.

Rule: step t diverged if |loss_t| > 1000 × max(L, 1) or the mean pre-normalisation embedding norm
n_t > 10000 × N, L and N the medians over the run's first 10 steps, each checked against those
before it (a blow-up at step 1 cannot inflate its own reference; the floor 1 spares a loss that
starts near 0). Healthy runs stay far below: every registered loss peaks at ≤ 13× / 2× on the
synthetic data (RSW, proxies at 1e5 × lr; the others ≤ 4×: tests/training/test_divergence.py),
RSW at 6.8× / 1.4× over Omniglot's 300 steps (benchmarks/divergence_headroom.py); Adam moves a
weight by about lr per step, so norms grow about linearly, not 1e4-fold.

A run wrong from step 0 has no healthy early level to compare with; three checks stop it
(:class:`TrainingNotLearningError`, naming the loss's settings to look at). Healthy runs of
every loss measured at the study's settings, on the synthetic set, the tiny profile and
Omniglot at the full profile (tests/training/test_divergence.py):
- |loss| > 1e6 at one of the first 10 steps, before a reference exists (a scale or margin of
  1e30): healthy runs start below 2e2 (at most RSW 184 synthetic, DAAL 41 on Omniglot);
- the loss constant over the first 10 steps (spread <= 1e-6 x its median, or all 0): nothing
  moves it (e.g. a temperature of 0); over 10 different batches healthy runs spread by at least
  3e-2 of their median (triplet 0.035, language 0.033 on Omniglot);
- validation MAP@R at chance after 2 validation rounds: best <= 1.5 x chance + 0.01, chance the
  expected MAP@R of a random ranking of the validation split (:func:`chance_map_at_r`). Omniglot
  (4 held-out alphabets): chance 0.17%, limit 1.26%; healthy runs reach 3.9-8.4x the limit after
  two rounds of only 8 steps, >= 20% (16x) after the study's first two epochs. Tiny profile: chance
  9.0%, limit 14.5%, healthy runs >= 36.5% (2.6x).
Runs shorter than 10 steps (the tiny profile) skip the two loss checks.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

LOSS_BLOWUP = 1e3
NORM_BLOWUP = 1e4
EARLY_STEPS = 10
START_LOSS_MAX = 1e6  # |loss| above this in the first steps: no healthy loss starts there
CONSTANT_RTOL = 1e-6  # first steps' spread <= this x their median: a constant loss
CHANCE_ROUNDS = 2  # validation rounds after which MAP@R must have left chance
CHANCE_FACTOR = 1.5  # "at chance": best MAP@R <= CHANCE_FACTOR x chance + CHANCE_MARGIN
CHANCE_MARGIN = 0.01


class TrainingDivergedError(FloatingPointError):
    """Training stopped: the loss or the embeddings diverged (the message says what is on disk)."""


class NonFiniteLossError(TrainingDivergedError):
    """The loss (or an embedding norm) became NaN or infinite."""


class TrainingNotLearningError(TrainingDivergedError):
    """Training stopped: the loss is astronomical from step 0 or constant, or validation stays
    at chance; the loss's settings, not the lr, are what to check."""


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
                if abs(loss) > START_LOSS_MAX:  # no early level to compare with yet
                    raise TrainingNotLearningError(
                        f"training cannot learn: loss {loss:.3g} {where} is over "
                        f"{START_LOSS_MAX:g} from the first steps (healthy losses start below "
                        f"2e2): a scale or margin out of range, {name}"
                    )
                self.early_loss.append(abs(loss))
                self.early_norm.append(norm)
                if len(self.early_loss) == EARLY_STEPS:
                    self._check_moves(where, name)

    def _check_moves(self, where: str, name: str) -> None:
        """The first ``EARLY_STEPS`` losses (of different batches) must differ."""
        level = statistics.median(self.early_loss)
        spread = max(self.early_loss) - min(self.early_loss)
        if spread <= CONSTANT_RTOL * level:
            raise TrainingNotLearningError(
                f"training is not learning: |loss| is {level:.6g} at each of the first "
                f"{EARLY_STEPS} steps (spread {spread:.3g}; checked {where}): a constant loss has "
                f"no gradient, {name}"
            )


def chance_map_at_r(labels: Any) -> float:
    """Expected MAP@R of a random ranking: every item queries the others (R = its class size - 1,
    G = n - 1 candidates); E[P(i) hit_i] = p (1 + (i - 1) q) / i with p = R / G,
    q = (R - 1) / (G - 1). NaN when no item has a positive.

    >>> round(chance_map_at_r([0, 0, 1, 1]), 4)  # R = 1 of G = 3
    0.3333
    """
    _, sizes = np.unique(np.asarray(labels), return_counts=True)
    g = int(sizes.sum()) - 1
    total, queries = 0.0, 0
    for size in sizes:
        r = int(size) - 1
        if r < 1:
            continue
        i = np.arange(1, r + 1)
        q = (r - 1) / (g - 1) if g > 1 else 0.0
        total += size * float(np.sum((r / g) * (1 + (i - 1) * q) / i) / r)
        queries += int(size)
    return float(total / queries) if queries else float("nan")


def check_above_chance(
    val_map_at_r: list[float], chance: float, loss_name: str, epoch: int
) -> None:
    """After ``CHANCE_ROUNDS`` validation rounds the best MAP@R must be above chance (module
    docstring); ``val_map_at_r`` holds every round so far, this one last."""
    if len(val_map_at_r) != CHANCE_ROUNDS or not math.isfinite(chance):
        return
    best, limit = max(val_map_at_r), CHANCE_FACTOR * chance + CHANCE_MARGIN
    if best <= limit:
        raise TrainingNotLearningError(
            f"training is not learning: validation MAP@R is still at chance after "
            f"{CHANCE_ROUNDS} rounds (best {best:.4f}, at most {limit:.4f} = {CHANCE_FACTOR:g} x "
            f"chance {chance:.4f} + {CHANCE_MARGIN:g}) at epoch {epoch} (0-based), "
            f"loss {loss_name!r}"
        )


def explain(
    err: TrainingDivergedError, last_epoch: int, checkpoint: Path, settings: Any, loss_fn: Any
) -> None:
    """Complete ``err``'s message with what is on disk and the settings to lower (or, when the
    loss cannot learn, the loss settings to check)."""
    hint = (
        loss_hint(settings)
        if isinstance(err, TrainingNotLearningError)
        else fix_hint(settings, loss_fn)
    )
    err.args = (f"{err}; {on_disk(last_epoch, checkpoint)}. To fix: {hint}",)


#: Loss hyper-parameters that set a loss's scale: named first by :func:`loss_hint`.
SCALE_KEYS = ("scale", "margin", "temperature", "alpha", "beta", "la", "gamma", "tau", "weight")


def loss_hint(settings: Any) -> str:
    """The loss's numeric settings (scale, margin, temperature... first), with their values:
    ``check losses.arcface: scale (now 1e+30), margin_degrees (now 28.6), ...``."""
    from dmlstudy.losses import loss_hyperparameters

    try:
        params = {**loss_hyperparameters(settings.loss), **settings.loss_params}
    except (KeyError, TypeError, ValueError):
        params = dict(settings.loss_params)
    numeric = {
        k: v
        for k, v in params.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and k != "proxy_lr_multiplier"
    }
    first = [k for k in numeric if any(part in SCALE_KEYS for part in k.split("_"))]
    keys = first + [k for k in numeric if k not in first]
    values = ", ".join(f"{k} (now {numeric[k]:g})" for k in keys) or "its hyper-parameters"
    return (
        f"check losses.{settings.loss}: {values}, against the published values "
        "(docs/losses.md; params.yaml)"
    )


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
        "from it (and stop the same way), changed settings replace the run"
    )
