"""Does the tuning campaign's first Hyperband rung favour fast starters? (protocol v2, issue #15)

Hyperband's most aggressive bracket compares trials after ``min_resource`` epochs (3) and
prunes most of them there. If the trials pruned at that first rung are the ones with a low
learning rate, the search judged a slow start, not an end point: the low-lr region was never
trained to its plateau. Per loss, and pooled over losses, this compares the learning rates of
the search trials pruned at the first rung with those of the search trials that trained past it
(the published trial 0, never pruned, is left out).

- per loss: the two groups' median lr and the Mann–Whitney U test (exact, two-sided) on them;
- pooled: the mean, over losses, of the first-rung-pruned trials' mean within-loss lr rank
  minus the others', scaled to [-1, 1] (negative: pruned trials had the lower lr), with a
  permutation test that shuffles the pruned label *within* each loss (losses differ in their
  lr ranges and in how many trials each rung pruned; a pooled test that ignored them would
  compare losses, not trials). ``n_perm`` draws, seeded; a p-value at the test's resolution is
  printed as "p < 1/(n_perm + 1)" (:func:`p_text`).

scipy's ``mannwhitneyu`` serves the per-loss test; the stratified permutation is written here
(a few lines) because no well-kept library offers one for this statistic.

>>> import pandas as pd
>>> t = pd.DataFrame({"loss": ["a"] * 6, "lr": [1e-4, 2e-4, 3e-4, 1e-3, 2e-3, 3e-3],
...                   "pruned_first": [True, True, True, False, False, False]})
>>> r = first_rung_check(t, n_perm=999, seed=0)
>>> row = r.per_loss.loc["a"]
>>> int(row["pruned at rung 1"]), round(float(row["p (Mann-Whitney)"]), 3)
(3, 0.1)
>>> r.effect, round(r.p, 1)
(-1.0, 0.1)
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

#: The per-loss table's columns.
COLUMNS = [
    "loss",
    "pruned at rung 1",
    "trained past it",
    "median lr, pruned",
    "median lr, the rest",
    "p (Mann-Whitney)",
]


@dataclass(frozen=True)
class FirstRungCheck:
    """``per_loss``: one row per loss with both groups; ``effect``: the pooled rank difference
    in [-1, 1] (negative: the pruned trials had the lower lr); ``p``: its permutation p-value
    (NaN when no loss has both groups)."""

    per_loss: pd.DataFrame
    effect: float
    p: float
    n_perm: int


def search_runs(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per search *run* of the campaign record (``trials.csv`` rows or the storage's
    table): a trial and its retries (``retry_of``, a killed worker's trial resumed) are one run,
    which trained ``epochs`` (its last retry's count: a retry resumes the folder) and ended as
    its last retry did. Indexed by (loss, study, run); WAITING trials left out.

    >>> t = pd.DataFrame({"loss": "a", "study": "a", "phase": "search", "trial": [0, 1, 2],
    ...                   "state": ["COMPLETE", "FAIL", "PRUNED"], "retry_of": ["", "", 1],
    ...                   "epochs": [50, 8, 20], "stopped": ["", "", "pruner"],
    ...                   "collapsed": False})
    >>> search_runs(t)[["epochs", "state"]].values.tolist()
    [[50, 'COMPLETE'], [20, 'PRUNED']]
    """
    s = trials[(trials["phase"] == "search") & (trials["state"] != "WAITING")]
    retry = s["retry_of"]
    run = retry.where(retry.notna() & (retry.astype(str) != ""), s["trial"])
    return (
        s.assign(run=run.astype(int))
        .groupby(["loss", "study", "run"])
        .agg(
            epochs=("epochs", "max"),
            state=("state", "last"),
            stopped=("stopped", "last"),
            collapsed=("collapsed", "last"),
        )
    )


def search_trials_at_first_rung(trials: pd.DataFrame, first_rung: int) -> pd.DataFrame:
    """The campaign record's (``trials.csv``) search trials that met the first rung's decision:
    pruned there, or trained past it (complete, cut by the budget or pruned later); trial 0 (the
    published values) and trials that never reached it left out. Columns: loss, lr,
    pruned_first."""
    s = trials[(trials["phase"] == "search") & ~trials["published"].astype(bool)]
    s = s[s["state"].isin(["COMPLETE", "PRUNED"])]
    epochs = pd.to_numeric(s["epochs"], errors="coerce")
    pruned_at = pd.to_numeric(s["pruned_at"], errors="coerce")
    pruned_first = pruned_at == first_rung
    s = s[pruned_first | (epochs > first_rung)]
    lr = s["point"].map(lambda p: json.loads(p).get("train.lr", np.nan))
    out = pd.DataFrame({"loss": s["loss"], "lr": lr, "pruned_first": pruned_first[s.index]})
    return out.dropna(subset=["lr"]).reset_index(drop=True)


def _rank_difference(ranks: np.ndarray, pruned: np.ndarray, groups: list[np.ndarray]) -> float:
    """Mean over losses of (mean lr rank of the pruned − mean rank of the rest) / (n/2): with
    ranks 1..n, k pruned trials at the lowest ranks have mean (k + 1)/2 and the rest (n + k + 1)/2,
    a gap of n/2 whatever k, so complete separation is −1 (pruned lowest) or +1."""
    diffs = []
    for idx in groups:
        p, r = pruned[idx], ranks[idx]
        diffs.append((r[p].mean() - r[~p].mean()) / (len(idx) / 2))
    return float(np.mean(diffs))


def first_rung_check(trials: pd.DataFrame, *, n_perm: int = 9999, seed: int = 0) -> FirstRungCheck:
    """The check on a frame of (loss, lr, pruned_first) (:func:`search_trials_at_first_rung`)."""
    rows, groups = [], []
    ranks = np.empty(len(trials))
    frame = trials.reset_index(drop=True)
    for loss, g in frame.groupby("loss", sort=True):
        pruned, rest = g.loc[g["pruned_first"], "lr"], g.loc[~g["pruned_first"], "lr"]
        row = {
            "loss": loss,
            "pruned at rung 1": len(pruned),
            "trained past it": len(rest),
            "median lr, pruned": pruned.median() if len(pruned) else np.nan,
            "median lr, the rest": rest.median() if len(rest) else np.nan,
            "p (Mann-Whitney)": np.nan,
        }
        if len(pruned) and len(rest):
            method = "exact" if g["lr"].nunique() == len(g) else "asymptotic"
            row["p (Mann-Whitney)"] = stats.mannwhitneyu(
                pruned, rest, alternative="two-sided", method=method
            ).pvalue
            ranks[g.index] = stats.rankdata(g["lr"])
            groups.append(g.index.to_numpy())
        rows.append(row)
    per_loss = pd.DataFrame(rows, columns=COLUMNS).set_index("loss")
    if not groups:
        return FirstRungCheck(per_loss, np.nan, np.nan, n_perm)
    pruned = frame["pruned_first"].to_numpy(bool)
    observed = _rank_difference(ranks, pruned, groups)
    rng = np.random.default_rng(seed)
    shuffled = pruned.copy()
    extreme = 0
    for _ in range(n_perm):
        for idx in groups:
            shuffled[idx] = rng.permutation(pruned[idx])
        extreme += abs(_rank_difference(ranks, shuffled, groups)) >= abs(observed) - 1e-12
    return FirstRungCheck(per_loss, observed, (extreme + 1) / (n_perm + 1), n_perm)


def p_text(p: float, n_perm: int) -> str:
    """A permutation p-value as a reader should read it: at the test's resolution floor
    (1/(n_perm + 1)) it is a bound, not a measurement.

    >>> p_text(1 / 10000, 9999), p_text(0.25, 9999)
    ('p ≤ 0.0001 (no permutation as extreme)', 'p = 0.25')
    """
    floor = 1 / (n_perm + 1)
    if p <= floor:
        return f"p ≤ {floor:.2g} (no permutation as extreme)"
    return f"p = {p:.3g}"


#: The confirmation-margin table's columns.
MARGIN_COLUMNS = ["loss", "chosen", "runner-up", "seeds", "lead", "ci low", "ci high", "separated"]


def confirmation_margins(
    confirm: pd.DataFrame, winners: pd.DataFrame, level: float = 0.95
) -> pd.DataFrame:
    """Per loss with two or more confirmed candidates: the chosen trial's lead over the best
    other candidate, in val MAP@R points, paired by seed (both trained on the same seeds, so the
    seed's own effect cancels), with a t-interval at ``level`` over the seeds' paired
    differences; ``separated`` when the interval excludes 0. A lead that is not separated means
    the rule (best mean) chose between candidates that did equally well within seed noise. The
    chosen trial is the one with the best mean, so its lead is if anything inflated (the
    winner's curse): a lead that is not separated is not a difference.

    ``confirm``: complete confirmation rows (loss, trial — the confirmed search trial —, seed,
    ``val_map@r``; a repeated (trial, seed) keeps its last row); ``winners``: loss, trial.

    >>> c = pd.DataFrame({"loss": "a", "trial": [1, 1, 1, 5, 5, 5], "seed": [0, 1, 2] * 2,
    ...                   "val_map@r": [0.52, 0.51, 0.50, 0.50, 0.49, 0.48]})
    >>> r = confirmation_margins(c, pd.DataFrame({"loss": ["a"], "trial": [1]})).iloc[0]
    >>> int(r["runner-up"]), int(r["seeds"]), round(float(r["lead"]), 2), bool(r["separated"])
    (5, 3, 2.0, True)
    """
    rows = []
    last = confirm.drop_duplicates(["loss", "trial", "seed"], keep="last")
    chosen_by_loss = dict(zip(winners["loss"], winners["trial"]))
    for loss, g in last.groupby("loss", sort=True):
        if loss not in chosen_by_loss:
            continue
        by_seed = g.pivot(index="seed", columns="trial", values="val_map@r")
        chosen = chosen_by_loss[loss]
        others = [t for t in by_seed.columns if t != chosen]
        if chosen not in by_seed.columns or not others:
            continue
        runner = max(others, key=lambda t: (by_seed[t].mean(), -t))
        diff = 100 * (by_seed[chosen] - by_seed[runner]).dropna().to_numpy()
        n = len(diff)
        lead = float(diff.mean()) if n else np.nan
        half = (
            float(stats.t.ppf(0.5 + level / 2, n - 1) * diff.std(ddof=1) / np.sqrt(n))
            if n >= 2
            else np.nan
        )
        rows.append(
            {
                "loss": loss,
                "chosen": int(chosen),
                "runner-up": int(runner),
                "seeds": n,
                "lead": lead,
                "ci low": lead - half,
                "ci high": lead + half,
                "separated": bool(n >= 2 and (lead - half > 0 or lead + half < 0)),
            }
        )
    return pd.DataFrame(rows, columns=MARGIN_COLUMNS).set_index("loss")


def margins_sentence(margins: pd.DataFrame, level: float = 0.95) -> str:
    """A computed sentence on :func:`confirmation_margins`: how many losses' choices the data
    separate, and which were the rule's.

    >>> m = pd.DataFrame({"seeds": [3, 3], "lead": [0.0, 2.0], "separated": [False, True]},
    ...                  index=pd.Index(["ms", "daal"], name="loss"))
    >>> s = margins_sentence(m)
    >>> "for 1 of 2 losses" in s, "For ms (+0.0 points) the choice is the rule's" in s
    (True, True)
    """
    if margins.empty:
        return ""
    close = margins[~margins["separated"]]
    head = (
        f"Confirmation margins: the seeds separate the chosen trial from the runner-up (a "
        f"{level:.0%} t-interval of the seed-paired difference that excludes 0) for "
        f"{len(margins) - len(close)} of {len(margins)} losses."
    )
    if close.empty:
        return head
    names = ", ".join(f"{loss} ({row['lead']:+.1f} points)" for loss, row in close.iterrows())
    return (
        f"{head} For {names} the choice is the rule's (the best mean over "
        f"{int(close['seeds'].max())} seeds), not a measured difference: that many seeds cannot "
        "tell the two candidates apart."
    )
