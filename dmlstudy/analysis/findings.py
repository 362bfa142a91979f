"""Computed "what this shows" sentences: the best loss and what ties with it, what an ablation
concluded, what the multi-modal experiment shows. Every number comes from a ``compare`` table
(:mod:`dmlstudy.analysis.compare`, fractions) and is written in percent (points for differences).

>>> cmp = pd.DataFrame({"method": ["a", "b", "c"], "metric": "map@r", "reference": "a",
...     "mean": [.30, .29, .20], "ci_low": [.28, .27, .18], "ci_high": [.32, .31, .22],
...     "diff": [0, -.01, -.1], "diff_low": [0, -.03, -.12], "diff_high": [0, .01, -.08],
...     "p": [1, .4, .001], "p_holm": [1, .4, .002], "tied": [True, True, False],
...     "test": "classes"})
>>> best_sentence(cmp, "map@r", "on omniglot")  # doctest: +NORMALIZE_WHITESPACE
'Best MAP@R on omniglot: a, 30.0% (95% CI [28.0, 32.0], bootstrap over test classes). Tied
 with it (Holm-adjusted paired test over test classes, α = 0.05): b. Significantly below it: c.'
>>> arms_sentence(cmp, "map@r")  # doctest: +NORMALIZE_WHITESPACE
'vs a on MAP@R: b no significant difference (-1.0 points, p = 0.4); c lower
 (-10.0 points, p = 0.002).'
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from dmlstudy.analysis.compare import (
    LABELS,
    NO_VERDICT,
    inconclusive,
    reference_value,
    tie_bound,
)
from dmlstudy.evaluation.hierarchical import format_p, inconclusive_wording, points

ALPHA = 0.05


def _unit(test: str) -> str:
    return "seeds and test classes" if test == "seeds" else "test classes"


def best_sentence(comparison: pd.DataFrame, metric: str, where: str = "") -> str:
    """The best method of ``metric`` with its interval, what ties with it, what is below."""
    c = comparison[comparison["metric"] == metric]
    ref = c["reference"].iloc[0]
    best = c[c["method"] == ref].iloc[0]
    name = LABELS.get(metric, metric)
    unclear = pd.Series([inconclusive(r) for _, r in c.iterrows()], index=c.index, dtype=bool)
    tie = c["tied"] & ~unclear & (c["method"] != ref)  # a tie the design can bound
    tied = list(c.loc[tie, "method"])
    below = [m for m in c.loc[~c["tied"], "method"]]
    head = (
        f"Best {name}{' ' + where if where else ''}: {ref}, {100 * best['mean']:.1f}% (95% CI "
        f"[{100 * best['ci_low']:.1f}, {100 * best['ci_high']:.1f}], bootstrap over test classes)."
    )
    if len(c) == 1:
        return head
    if "verdict" in c.columns and not c["verdict"].astype(bool).all():
        return (
            f"{head} No tied/below verdict from fewer than 3 seeds: a test over the test "
            "classes of so few training runs ignores training randomness."
        )
    test = f"Holm-adjusted paired test over {_unit(str(best['test']))}, α = {ALPHA:g}"
    tail = f" Tied with it ({test}): {', '.join(tied) or 'none'}."
    if tied and "mdd" in c.columns:  # what "tied" can mean at this number of seeds
        mdd = 100 * c.loc[tie, "mdd"]
        span = f"{mdd.min():.1f}" if len(mdd) == 1 else f"{mdd.min():.1f}–{mdd.max():.1f}"
        tail += (
            f" A tie reads: closer than the smallest difference this design detects "
            f"({span} points, by loss), not equal."
        )
    if below:
        tail += f" Significantly below it: {', '.join(below)}."
    if unclear.any():
        names = ", ".join(c.loc[unclear, "method"])
        tail += f" No verdict, the seeds spread too far to detect even a drop to 0: {names}."
    return head + tail


def has_verdict(row: pd.Series) -> bool:
    """Whether a comparison row may carry a tied/higher/lower verdict: from 3 seeds on (its test
    covers training randomness); rows without a ``verdict`` column are from before that rule."""
    return bool(row["verdict"]) if "verdict" in row.index else True


def difference_text(r: pd.Series) -> str:
    """A method's difference from the reference, in points: with its verdict and Holm-adjusted p
    from 3 seeds on, else with its interval over test classes and no verdict (the words of
    :func:`dmlstudy.analysis.compare.conclusion`).

    >>> difference_text(pd.Series({"diff": -.068, "diff_low": -.08, "diff_high": -.055,
    ...                            "p_holm": .02, "tied": False, "verdict": False}))
    '-6.8 points (95% CI over test classes [-8.0, -5.5]; fewer than 3 seeds: no verdict)'
    """
    if not has_verdict(r):
        return (
            f"{points(100 * r['diff'], sign=True)} points (95% CI over test classes "
            f"[{points(100 * r['diff_low'])}, {points(100 * r['diff_high'])}]; {NO_VERDICT})"
        )
    closer = tie_bound(r)  # what the design could have detected, as every tie reads
    if inconclusive(r):
        word = inconclusive_wording(float(r["mdd"]), int(r["seeds"]), reference_value(r))
    elif closer is not None:
        word = f"tied ({closer})"
    else:
        word = "no significant difference" if r["tied"] else "higher" if r["diff"] > 0 else "lower"
    return f"{word} ({points(100 * r['diff'], sign=True)} points, {format_p(r['p_holm'])})"


def arms_sentence(comparison: pd.DataFrame, metric: str) -> str:
    """Every method against the reference on ``metric`` (:func:`difference_text`)."""
    c = comparison[comparison["metric"] == metric]
    ref = c["reference"].iloc[0]
    parts = [f"{r['method']} {difference_text(r)}" for _, r in c[c["method"] != ref].iterrows()]
    name = LABELS.get(metric, metric)
    return f"vs {ref} on {name}: " + ("; ".join(parts) or "no other arm") + "."


def study_findings(
    comparison: pd.DataFrame, where: str, unconverged: Sequence[str], seeds: int
) -> list[str]:
    """The evaluation's sentences: best MAP@R and R@1 with ties, convergence, what the
    intervals cover."""
    out = [best_sentence(comparison, "map@r", where)]
    r1 = comparison[comparison["metric"] == "recall@1"]
    if len(r1):
        out.append(best_sentence(comparison, "recall@1", where))
    out.append(
        "Every run converged (stopped at its validation plateau)."
        if not unconverged
        else f"Not converged (hit the epoch cap; their numbers may still rise with more "
        f"epochs): {', '.join(unconverged)}."
    )
    out.append(
        f"{seeds} seed{'s' if seeds > 1 else ''} per loss: the intervals cover another draw of "
        "test classes"
        + (
            ", not training randomness (add seeds for that): no tied/below verdict before 3 seeds."
            if seeds < 2
            else "; the Student-t intervals over seeds cover training randomness"
            + (
                ", and the paired tests include it (over seeds and test classes together)."
                if seeds >= 3
                else ": no tied/below verdict before 3 seeds."
            )
        )
    )
    return out


def ablation_summary(name: str, loss: str, comparison: pd.DataFrame) -> str:
    """One sentence per ablation for the index: its loss, reference arm and MAP@R verdicts."""
    return f"Ablation {name} ({loss}), every arm " + arms_sentence(comparison, "map@r")


def multimodal_summary(comparison: pd.DataFrame, where: str = "") -> str:
    """What the multi-modal experiment shows: which loss keeps the most fine structure."""
    return "Trained on coarse labels only, " + best_sentence(comparison, "map@r", where).replace(
        "Best MAP@R", "best fine-label MAP@R", 1
    )
