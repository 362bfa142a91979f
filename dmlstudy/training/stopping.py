"""Training to a validation plateau: early stopping with patience, and an lr drop on plateau.

The rule (``TrainSettings.patience``, ``min_delta``, ``schedule``, ``plateau_factor``,
``plateau_drops``): a validation round *improves* when val MAP@R exceeds the best so far by more
than ``min_delta``. After ``patience`` rounds without improvement, schedule ``"plateau"`` multiplies
every group's lr by ``plateau_factor`` (at most ``plateau_drops`` times, the wait restarting after
each drop); once no drop is left, the run stops. So a stopped run's selected (best) epoch is
``patience`` rounds before its last, and a run that reaches ``epochs`` without stopping is *not
converged* (reported as such). Without ``patience`` every epoch runs, as before.

torch's ``ReduceLROnPlateau`` would do the lr part, but the stop decision needs the same best /
wait state, and one small object that is saved in the checkpoint keeps resume exact.

>>> rule = Plateau(patience=2, min_delta=0.0, drops=1)
>>> [rule.update(e, v) for e, v in enumerate([0.1, 0.2, 0.2, 0.15, 0.3, 0.3, 0.29])]
['improve', 'improve', 'wait', 'drop', 'improve', 'wait', 'stop']
>>> rule.best_epoch, rule.lr_factor(0.1)
(4, 0.1)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Decision = Literal["improve", "wait", "drop", "stop"]


@dataclass
class Plateau:
    """State of the plateau rule: best value and epoch, rounds waited, lr drops taken."""

    patience: int | None
    min_delta: float = 0.0
    drops: int = 0
    best: float = float("-inf")
    best_epoch: int = -1
    waited: int = 0
    dropped: int = 0
    stopped: bool = False

    def update(self, epoch: int, value: float) -> Decision:
        """Record one validation ``value`` of ``epoch`` and say what to do next."""
        if value > self.best + self.min_delta or self.best_epoch < 0:
            self.best, self.best_epoch, self.waited = float(value), epoch, 0
            return "improve"
        self.waited += 1
        if self.patience is None or self.waited < self.patience:
            return "wait"
        if self.dropped < self.drops:
            self.dropped += 1
            self.waited = 0
            return "drop"
        self.stopped = True
        return "stop"

    def lr_factor(self, factor: float) -> float:
        """Multiplier of the base lr after the drops taken so far."""
        return factor**self.dropped

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Plateau:
        return cls(**state)
