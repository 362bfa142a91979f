"""Training to a validation plateau: a smoothed plateau test, lr drops, and early stopping.

The rule (``TrainSettings.patience``, ``min_delta``, ``plateau_smoothing``, ``schedule``,
``plateau_factor``, ``plateau_drops``) reads a *smoothed* validation curve: the exponential moving
average ``level = s * level + (1 - s) * val`` (``s = plateau_smoothing``; 0 = the raw curve). A
round *improves* when the level exceeds its best so far by more than ``min_delta``. After
``patience`` rounds without improvement, schedule ``"plateau"`` multiplies every group's lr by
``plateau_factor`` (at most ``plateau_drops`` times, the wait restarting after each drop); once no
drop is left, the run stops. The selected model is the best *raw* validation round
(``best_epoch``), which the smoothing does not move. A run is *converged* when the rule stopped it
and the smoothed curve is flat at the end: its least-squares slope over the last ``patience + 1``
rounds is at most ``min_delta`` per round (a dip that fired the last drop and is still being
climbed back is not flat). A run that reaches ``epochs`` is not converged. ``stop=False``
(``plateau_stop: false``, the budget check) never stops: after the last drop the run trains on.

The first ``patience`` rounds always improve (the EMA still carries its first, noisy values: a
high first value would otherwise fire a drop on a rising curve).

Why smoothing (protocol v2, issue #15; measured with ``python -m dmlstudy.analysis.stopping_replay``
on protocol v1's ``results/history/omniglot-v1/val_curves.csv``): the epoch-to-epoch noise SD of
Omniglot's val MAP@R is 0.18-0.93 points (median 0.39, pooled 0.53; SD of second differences /
sqrt(6), epochs >= 5), so one-round dips of 0.8-1.9 points happen in a 20-epoch curve. On the raw
curve, patience 2 and min_delta 0.5 points (v1) such a dip fired the lr drop while the curve still
rose 0.07-0.65 points/epoch (median 0.40). The EMA with ``plateau_smoothing: 0.7`` divides the noise
SD by 2.4 at about two rounds of lag; ``patience: 5`` and ``min_delta: 0.0025`` (0.25 points) then
ask for a smoothed gain under 0.05 points/round before a drop, and ``plateau_drops: 2``. Replayed on
the committed curves it drops before v1's drop on no loss; on noisy copies of ``a - b exp(-t/tau)``
fitted to each loss's curve before v1's drop (at the loss's own noise) the first drop moves from
epoch 13 to 27 (medians; 24-32 by loss), its true slope there from 0.24 to 0.01 points/epoch, the
gain left at that lr from 0.9 to 0.0 points. Linear curves with noise (tests/training/
test_stopping.py): rising 0.5 points/epoch never drops; rising 0.3 drops in 0% of draws at noise 0.4
and 6% at 0.9; flat stops after 20-23 rounds (median; at most 36) and is ``converged`` in 100% /
99.8% of draws.

torch's ``ReduceLROnPlateau`` would do the lr part, but the stop decision needs the same best /
wait state, and one small object that is saved in the checkpoint keeps resume exact.

>>> rule = Plateau(patience=2, min_delta=0.0, drops=1)
>>> [rule.update(e, v) for e, v in enumerate([0.1, 0.2, 0.2, 0.15, 0.3, 0.3, 0.29])]
['improve', 'improve', 'wait', 'drop', 'improve', 'wait', 'stop']
>>> rule.best_epoch, rule.lr_factor(0.1), rule.converged
(4, 0.1, True)

Smoothed, one noisy dip does not drop the lr of a rising curve; the raw rule drops at once:

>>> dip = [0.30, 0.32, 0.34, 0.325, 0.344, 0.36]
>>> raw = Plateau(2, 0.005, 1)
>>> [raw.update(e, v) for e, v in enumerate(dip)]
['improve', 'improve', 'improve', 'wait', 'drop', 'improve']
>>> ema = Plateau(2, 0.005, 1, smoothing=0.5)
>>> [ema.update(e, v) for e, v in enumerate(dip)]
['improve', 'improve', 'improve', 'wait', 'improve', 'improve']
>>> ema.best_epoch  # the selected epoch: the best raw round
5
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Decision = Literal["improve", "wait", "drop", "stop"]


def ols_slope(values: list[float]) -> float:
    """Least-squares slope of ``values`` against 0, 1, 2, ... (0.0 for fewer than two).

    >>> ols_slope([1.0, 2.0, 3.0]), ols_slope([5.0])
    (1.0, 0.0)
    """
    n = len(values)
    if n < 2:
        return 0.0
    mean_t, mean_v = (n - 1) / 2, sum(values) / n
    num = sum((t - mean_t) * (v - mean_v) for t, v in enumerate(values))
    return num / sum((t - mean_t) ** 2 for t in range(n))


@dataclass
class Plateau:
    """State of the plateau rule: the smoothed level and its best, rounds waited, lr drops taken,
    and the best raw value and epoch (the selected model)."""

    patience: int | None
    min_delta: float = 0.0
    drops: int = 0
    smoothing: float = 0.0
    stop: bool = True  # False (the budget check): no stop; after the last drop, keep waiting
    best: float = float("-inf")
    best_epoch: int = -1
    level: float = float("-inf")
    level_best: float = float("-inf")
    recent: list[float] = field(default_factory=list)
    rounds: int = 0
    waited: int = 0
    dropped: int = 0
    stopped: bool = False
    converged: bool = False

    def update(self, epoch: int, value: float) -> Decision:
        """Record one validation ``value`` of ``epoch`` and say what to do next."""
        value = float(value)
        if value > self.best or self.best_epoch < 0:
            self.best, self.best_epoch = value, epoch
        first = self.level == float("-inf")
        self.level = value if first else self.smoothing * self.level + (1 - self.smoothing) * value
        self.recent = [*self.recent, self.level][-((self.patience or 1) + 1) :]
        self.rounds += 1
        warming = self.rounds <= (self.patience or 0)  # the EMA still carries its first values
        if first or warming or self.level > self.level_best + self.min_delta:
            self.level_best, self.waited = self.level, 0
            return "improve"
        self.waited += 1
        if self.patience is None or self.waited < self.patience:
            return "wait"
        if self.dropped < self.drops:
            self.dropped += 1
            self.waited = 0
            return "drop"
        if not self.stop:
            return "wait"
        self.stopped = True
        self.converged = self.slope <= self.flat_slope
        return "stop"

    @property
    def slope(self) -> float:
        """Least-squares slope of the smoothed curve over the last ``patience + 1`` rounds."""
        return ols_slope(self.recent)

    @property
    def flat_slope(self) -> float:
        """The largest end slope (per round) of a converged run: ``min_delta``."""
        return self.min_delta

    def lr_factor(self, factor: float) -> float:
        """Multiplier of the base lr after the drops taken so far."""
        return factor**self.dropped

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Plateau:
        return cls(**state)
