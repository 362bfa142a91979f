"""Replay the plateau rule on committed validation curves: noise, and when each rule drops/stops.

``python -m dmlstudy.analysis.stopping_replay [CURVES] [params.yaml]`` (CURVES: a
``val_curves.csv``; by default protocol v1's, ``results/history/omniglot-v1/val_curves.csv``, on
which the v2 rule was measured) prints, per loss of the main comparison:

- the epoch-to-epoch noise of val MAP@R: the SD of second differences divided by sqrt(6) from
  epoch 5 on (for white noise on a smooth curve ``Var(y[t+1] - 2 y[t] + y[t-1]) = 6 sigma^2``;
  the curve's own curvature is small there);
- the protocol-v1 rule (raw curve, patience 2, min_delta 0.5 points, one drop) and the rule of
  ``params.yaml``'s ``train:`` section replayed on the committed curve: the epoch of the first lr
  drop, the stop, and the least-squares slope of the raw curve over the 5 epochs that end at the
  drop. The committed curves were trained under the v1 rule, so after its first drop they are at
  the lower lr: a later rule is replayed only up to that epoch ("-" = no drop before it);
- a simulation of the first drop beyond the committed data: ``a - b exp(-t / tau)`` fitted to the
  curve before v1's drop (one lr), plus Gaussian noise of the loss's measured SD (400 draws); the
  median epoch of the first drop, the median true slope there, and the median gain it leaves at
  that lr (``a - curve``), for both rules.

All values in percent points, epochs 1-based as in every report.

>>> y = np.array([10.0, 20, 25, 28, 30, 31, 31.4, 31.3, 31.6])
>>> replay(y, V1)["first_drop"]  # 0.4 and 0.3 points over epoch 6's 31.0: no gain of 0.5
8
>>> replay(y, {**V1, "smoothing": 0.5})["first_drop"] is None
True
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from dmlstudy.training.stopping import Plateau

#: The protocol-v1 rule (until issue #15): raw curve, patience 2, min_delta 0.5 points, one drop.
V1: dict[str, Any] = {"patience": 2, "min_delta": 0.005, "drops": 1, "smoothing": 0.0}
#: Slope window (epochs) reported at a drop, as in issue #15.
SLOPE_EPOCHS = 5


def load_curves(path: str | Path) -> dict[str, np.ndarray]:
    """``{loss: val MAP@R per epoch (percent, epoch 1 first)}`` of a ``val_curves.csv``."""
    frame = pd.read_csv(path).sort_values(["loss", "epoch"], kind="stable")
    order = list(dict.fromkeys(pd.read_csv(path)["loss"]))
    return {loss: frame[frame["loss"] == loss]["val_map@r"].to_numpy(float) for loss in order}


def noise_sd(values: np.ndarray, start: int = 5) -> float:
    """Epoch-to-epoch noise SD: SD of the second differences from epoch ``start`` (1-based) on,
    divided by sqrt(6)."""
    y = np.asarray(values, float)[start - 1 :]
    if len(y) < 4:
        return float("nan")
    return float(np.std(np.diff(y, 2), ddof=1) / np.sqrt(6))


def rule_from_train(train: dict[str, Any]) -> dict[str, Any]:
    """The rule of a ``train:`` section (TrainSettings keys)."""
    return {
        "patience": train["patience"],
        "min_delta": train.get("min_delta", 0.0),
        "drops": train.get("plateau_drops", 1),
        "smoothing": train.get("plateau_smoothing", 0.0),
    }


def replay(values_pct: Sequence[float], rule: dict[str, Any]) -> dict[str, Any]:
    """Run ``rule`` on a curve (percent): 1-based epochs of the drops and the stop (None if none),
    and the raw slope (points/epoch) over the ``SLOPE_EPOCHS`` epochs ending at the first drop."""
    plateau = Plateau(**rule)
    drops: list[int] = []
    stop = None
    for epoch, v in enumerate(values_pct):
        decision = plateau.update(epoch, v / 100)
        if decision == "drop":
            drops.append(epoch + 1)
        if decision == "stop":
            stop = epoch + 1
            break
    first = drops[0] if drops else None
    return {
        "first_drop": first,
        "drops": drops,
        "stop": stop,
        "slope_at_drop": _slope(values_pct, first) if first else None,
        "best_epoch": plateau.best_epoch + 1,
    }


def _slope(values: Sequence[float], end: int) -> float:
    y = np.asarray(values[max(0, end - SLOPE_EPOCHS) : end], float)
    return float(np.polyfit(np.arange(len(y)), y, 1)[0]) if len(y) > 1 else float("nan")


def fit_saturating(values_pct: Sequence[float]) -> tuple[float, float, float]:
    """``(a, b, tau)`` of ``a - b exp(-t / tau)`` fitted to a curve (1-based epochs, from epoch 2:
    the first epoch is the start-up)."""
    from scipy.optimize import curve_fit

    y = np.asarray(values_pct, float)[1:]
    t = np.arange(2, len(y) + 2, dtype=float)
    p0 = (y[-1] + 2, y[-1] - y[0] + 2, 4.0)
    (a, b, tau), _ = curve_fit(
        lambda t, a, b, tau: a - b * np.exp(-t / tau), t, y, p0=p0, maxfev=20000,
        bounds=([0, 0, 0.5], [100, 200, 200]),
    )  # fmt: skip
    return float(a), float(b), float(tau)


def simulate(
    fit: tuple[float, float, float],
    sigma: float,
    rule: dict[str, Any],
    *,
    cap: int = 200,
    draws: int = 400,
    seed: int = 0,
) -> dict[str, float]:
    """First lr drop of ``rule`` on ``draws`` noisy copies of the fitted curve: median epoch,
    median true slope there (points/epoch) and median gain left at that lr (points)."""
    a, b, tau = fit
    t = np.arange(1, cap + 1, dtype=float)
    truth = a - b * np.exp(-t / tau)
    rng = np.random.default_rng(seed)
    epochs = []
    for _ in range(draws):
        curve = truth + sigma * rng.normal(size=cap)
        first = replay(curve, {**rule, "drops": 1})["first_drop"]
        epochs.append(first or cap)
    e = np.asarray(epochs)
    slope = b / tau * np.exp(-e / tau)
    left = b * np.exp(-e / tau)
    return {
        "epoch": float(np.median(e)),
        "true_slope": float(np.median(slope)),
        "left": float(np.median(left)),
        "early": float(np.mean(slope > 0.2)),  # share of drops while still rising > 0.2/epoch
    }


def replay_table(
    curves: dict[str, np.ndarray], new_rule: dict[str, Any], *, draws: int = 400
) -> pd.DataFrame:
    """One row per loss: noise, v1 and new rule replayed and simulated (module docstring)."""
    rows = []
    for loss, y in curves.items():
        old = replay(y, V1)
        cut = old["first_drop"] or len(y)  # one lr up to here
        new = replay(y[:cut], new_rule)
        sigma = noise_sd(y)
        fit = fit_saturating(y[:cut])
        sim_old = simulate(fit, sigma, V1, draws=draws)
        sim_new = simulate(fit, sigma, new_rule, draws=draws)
        rows.append(
            {
                "loss": loss,
                "noise_sd": sigma,
                "epochs": len(y),
                "v1_drop": old["first_drop"],
                "v1_stop": old["stop"],
                "v1_slope_at_drop": old["slope_at_drop"],
                "new_drop_before_v1": new["first_drop"],
                "sim_v1_drop": sim_old["epoch"],
                "sim_v1_true_slope": sim_old["true_slope"],
                "sim_v1_left": sim_old["left"],
                "sim_new_drop": sim_new["epoch"],
                "sim_new_true_slope": sim_new["true_slope"],
                "sim_new_left": sim_new["left"],
                "sim_new_early": sim_new["early"],
            }
        )
    return pd.DataFrame(rows).set_index("loss")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    curves_path = args[0] if args else "results/history/omniglot-v1/val_curves.csv"
    params_path = args[1] if len(args) > 1 else "params.yaml"
    new_rule = rule_from_train(yaml.safe_load(Path(params_path).read_text())["train"])
    table = replay_table(load_curves(curves_path), new_rule)
    sd = table["noise_sd"]
    print(f"v1 rule: {V1}\nnew rule (params.yaml train:): {new_rule}")
    print(
        f"noise SD of val MAP@R (points): median {sd.median():.2f}, range {sd.min():.2f}-"
        f"{sd.max():.2f}, pooled {np.sqrt((sd**2).mean()):.2f}"
    )
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(table.round(2).astype(object).where(table.notna(), "-").to_string())
    print(
        "medians: v1 slope at its drop {:.2f} points/epoch; simulated first drop v1 epoch {:.0f} "
        "(true slope {:.2f}, {:.1f} points left), new epoch {:.0f} (true slope {:.2f}, {:.1f} "
        "points left)".format(
            table["v1_slope_at_drop"].median(),
            table["sim_v1_drop"].median(),
            table["sim_v1_true_slope"].median(),
            table["sim_v1_left"].median(),
            table["sim_new_drop"].median(),
            table["sim_new_true_slope"].median(),
            table["sim_new_left"].median(),
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
