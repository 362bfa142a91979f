"""Divergence caught: the rule, its headroom on healthy runs of every registered loss, the error a
blown-up run stops with, and the check window changing nothing but when a check runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from dmlstudy.config import load_config
from dmlstudy.losses import DMLLoss, list_losses
from dmlstudy.losses import base as loss_base
from dmlstudy.training import NonFiniteLossError, TrainingDivergedError, TrainSettings, train
from dmlstudy.training.divergence import LOSS_BLOWUP, NORM_BLOWUP, DivergenceMonitor

REPO = Path(__file__).resolve().parents[2]


def _check(monitor: DivergenceMonitor, losses: list[float], chunk: int) -> str:
    """Feed ``losses`` (norm 1) in windows of ``chunk`` steps; the error message or ''."""
    try:
        for i in range(0, len(losses), chunk):
            part = losses[i : i + chunk]
            monitor.check(epoch=0, first_step=i, losses=part, norms=[1.0] * len(part))
    except TrainingDivergedError as err:
        return str(err)
    return ""


def test_a_blow_up_in_the_first_steps_cannot_raise_its_own_reference() -> None:
    # Step 1 already explodes: the median of the first 10 steps would be huge, the rule is not.
    msg = _check(DivergenceMonitor("npair"), [4.0, 1e27, 1e27, 1e27], chunk=10)
    assert "loss 1e+27 at epoch 0 (0-based), step 1 is over 1000 x its early level 4" in msg


def test_the_floor_keeps_a_loss_starting_at_zero_from_tripping() -> None:
    assert _check(DivergenceMonitor("triplet"), [0.0, 0.0, 0.3, 50.0, 0.1], chunk=2) == ""
    assert "step 2" in _check(DivergenceMonitor("triplet"), [0.0, 0.0, 1001.0], chunk=2)


def test_the_window_size_changes_nothing_but_when_the_check_runs() -> None:
    losses = [3.0, 2.5, 2.0, 1.5, 1.0, 0.8, 0.7, 0.6, 0.5, 0.5, 0.4, 6e3]
    monitors = [DivergenceMonitor("x") for _ in (1, 5, 12)]
    messages = {_check(m, losses, chunk) for m, chunk in zip(monitors, (1, 5, 12))}
    assert len(messages) == 1 and "step 11" in messages.pop()
    assert len({str(m.state()) for m in monitors}) == 1


def test_norm_blow_up_and_non_finite_norm() -> None:
    m = DivergenceMonitor("contrastive")
    m.check(epoch=0, first_step=0, losses=[0.5], norms=[2.0])
    with pytest.raises(TrainingDivergedError, match=r"embedding norm 2e\+05 .* step 1 is over"):
        m.check(epoch=0, first_step=1, losses=[0.5], norms=[2e5])
    with pytest.raises(NonFiniteLossError, match="non-finite embedding norm inf"):
        DivergenceMonitor("x").check(epoch=3, first_step=0, losses=[0.5], norms=[float("inf")])


@pytest.fixture(scope="module")
def study_params() -> object:
    return load_config(REPO / "params.yaml")


@pytest.mark.parametrize("loss", list_losses())
def test_healthy_runs_of_every_loss_stay_far_below_the_thresholds(
    make_settings: Callable[..., TrainSettings], tmp_path: Path, study_params: object, loss: str
) -> None:
    """The study's Omniglot hyper-parameters (proxy learning rates up to 1e5 x lr), ~36 steps:
    peaks stay under 1/50 of the loss threshold and 1/1000 of the norm threshold."""
    s = make_settings(
        tmp_path / loss,
        loss=loss,
        loss_params=study_params.loss_params("omniglot", loss),
        epochs=6,
        schedule="plateau",  # the study's rule: RSW's phase 2 follows the lr drop
        patience=6,
        max_steps_per_epoch=None,
        evaluate_test=False,
        eval_every=6,
        **study_params.loss_train("omniglot", loss),
    )
    d = train(s)["divergence"]
    assert len(d["early_loss"]) == 10
    assert d["peak_loss_ratio"] < LOSS_BLOWUP / 50, d
    assert d["peak_norm_ratio"] < NORM_BLOWUP / 1000, d


@pytest.mark.parametrize(
    "loss,what", [("contrastive", "embedding norm"), ("npair", "loss"), ("proxy_anchor", "")]
)
def test_a_huge_learning_rate_stops_with_the_setting_to_lower(
    make_settings: Callable[..., TrainSettings], tmp_path: Path, loss: str, what: str
) -> None:
    """lr 1e6 used to train to the end (npair losses ~1e27) and report a number."""
    s = make_settings(tmp_path / loss, loss=loss, lr=1e6)
    with pytest.raises(TrainingDivergedError) as err:
        train(s)
    msg = str(err.value)
    assert f"training diverged: {what}" in msg and f"loss {loss!r}" in msg, msg
    assert "at epoch 0 (0-based), step 1" in msg and "lower lr (now 1e+06)" in msg
    assert "no checkpoint yet: nothing to resume" in msg
    assert ("proxy_lr_multiplier (now" in msg) == (loss == "proxy_anchor")
    assert not (s.out_dir / "checkpoint.pt").exists() and not (s.out_dir / "metrics.json").exists()


class _NaNThenCrash(DMLLoss):
    """NaN at step 1; a later step fails on the NaN embeddings (as a sampler or miner would)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def compute(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if torch.isnan(embeddings).any():
            raise RuntimeError("probability tensor contains either inf, nan or element < 0")
        value = (embeddings**2).sum(1).mean()
        return value * float("nan") if self.calls == 2 else value


def test_a_later_failure_caused_by_an_unchecked_nan_reports_the_nan(
    make_settings: Callable[..., TrainSettings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(loss_base._REGISTRY, "_test_nan_then_crash", _NaNThenCrash)
    s = make_settings(tmp_path / "run", loss="_test_nan_then_crash", max_steps_per_epoch=4)
    with pytest.raises(NonFiniteLossError, match=r"epoch 0 \(0-based\), step 1") as err:
        train(s)
    assert isinstance(err.value.__context__, RuntimeError)


def test_results_do_not_depend_on_the_check_window(
    make_settings: Callable[..., TrainSettings], tmp_path: Path
) -> None:
    settings = [
        make_settings(tmp_path / f"n{n}", divergence_check_every=n, epochs=1, max_steps_per_epoch=5)
        for n in (1, 3)
    ]
    runs = [train(s) for s in settings]
    assert runs[0]["history"][0]["loss"] == runs[1]["history"][0]["loss"]
    assert runs[0]["divergence"] == runs[1]["divergence"]
    a, b = (np.load(tmp_path / f"n{n}" / "embeddings_test.npz")["embeddings"] for n in (1, 3))
    np.testing.assert_array_equal(a, b)
