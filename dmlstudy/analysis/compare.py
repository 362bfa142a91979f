"""Compare trained methods (losses, or the arms of an ablation) on the test split: interval of
each, and a paired test of each against a reference (the best method, or an ablation's baseline).

Per-query Recall@1 hits and AP@R values come from each run's ``embeddings_test.npz``, averaged
over the seeds of a method. The interval is a bootstrap over test classes (the zero-shot sampling
unit; it does not cover training randomness); with >= 2 seeds a Student-t interval over seeds is
added. With >= 3 seeds the paired test is over seeds and test classes together
(:func:`dmlstudy.evaluation.hierarchical.two_way_test`: the difference's interval and t-test
include training randomness, and ``mdd`` is the smallest difference the design detects with 80%
power at Holm's strictest level α/m, so that every tie lies closer than it); with 1-2 seeds it
is a sign-flip test over test classes, which says nothing about "loss A beats loss B"
(``verdict`` is False: reports show no tied/below verdict).
p-values are Holm-adjusted over the comparisons with the reference, and a method whose adjusted
p is >= ``alpha`` is *tied* with it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from dmlstudy.analysis.compact import PER_QUERY_FILE, load_per_query, per_query_from_embeddings
from dmlstudy.evaluation import mean_ci
from dmlstudy.evaluation.hierarchical import (
    TwoWay,
    beyond_reach,
    closer_than,
    format_p,
    inconclusive_wording,
    mdd_wording,
    points,
    spread_wording,
    two_way_test,
)
from dmlstudy.evaluation.significance import (
    class_bootstrap,
    holm,
    paired_class_test,
)
from dmlstudy.training.outputs import load_embeddings, load_run

COMPARED = ("recall@1", "map@r")
LABELS = {"recall@1": "R@1", "map@r": "MAP@R"}
#: How a difference without a verdict (fewer than 3 seeds) ends, in every sentence that shows one.
NO_VERDICT = "fewer than 3 seeds: no verdict"


def per_query(run_dir: str | Path, level: str = "fine") -> dict[str, np.ndarray]:
    """Per-query test metrics of one run at label ``level`` ("fine" or "coarse"): from its test
    embeddings, or from a compact run folder's per-query file (analysis/compact.py)."""
    run_dir = Path(run_dir)
    if not (run_dir / "embeddings_test.npz").is_file() and (run_dir / PER_QUERY_FILE).is_file():
        return load_per_query(run_dir, level)
    return per_query_from_embeddings(load_embeddings(run_dir), load_run(run_dir)["metric"], level)


def _seed_values(runs: Sequence[Path], level: str) -> list[dict[str, np.ndarray]]:
    out = [per_query(r, level) for r in runs]
    for o in out[1:]:
        if not np.array_equal(o["labels"], out[0]["labels"]):
            raise ValueError(f"runs {list(map(str, runs))} were tested on different queries")
    return out


def against_reference(
    grids: Mapping[str, np.ndarray],
    classes: np.ndarray,
    *,
    reference: str | None = None,
    confidence: float = 0.95,
    alpha: float = 0.05,
) -> tuple[str, dict[str, TwoWay]]:
    """The paired tests of every method against ``reference`` (the highest mean when None) over
    seeds and test classes (``grids``: method -> seeds × queries, the same queries and seeds).
    Returns (the reference, {other method: its :class:`TwoWay` difference}); ``mdd`` is at
    Holm's strictest level α/m (m comparisons), the bound of every tie. Choosing the reference
    as the best estimate does not inflate the family-wise rate of false "below" verdicts past
    ``alpha`` at the study's magnitudes (a simulation with known truth in
    ``tests/analysis/test_compare.py``)."""
    ref = reference or max(grids, key=lambda k: float(np.mean(grids[k])))
    first_step = alpha / max(len(grids) - 1, 1)  # Holm's strictest level: bounds every tie
    return ref, {
        name: two_way_test(g, grids[ref], classes, confidence=confidence, alpha=first_step)
        for name, g in grids.items()
        if name != ref
    }


def compare(
    groups: Mapping[str, Sequence[str | Path]],
    *,
    reference: str | None = None,
    metrics: Sequence[str] = COMPARED,
    level: str = "fine",
    confidence: float = 0.95,
    alpha: float = 0.05,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per (method, metric). ``groups`` maps a method to its run folders (one per seed,
    the same seeds for every method); ``reference=None`` compares with the best method of each
    metric. Columns: ``mean``, ``seed_ci`` (Student-t half-width; only with >= 2 seeds),
    ``ci_low``/``ci_high`` (class bootstrap), ``reference``, ``diff``/``diff_low``/``diff_high``,
    ``p``, ``p_holm``, ``tied`` (with the reference, or is it), ``test`` ("classes"/"seeds":
    seeds and classes together), ``seeds`` (runs per method), ``verdict`` (>= 3 seeds: a
    tied/below verdict may be shown) and,
    with >= 3 seeds, ``mdd`` (minimal detectable difference, fractions, at ``alpha / m`` for
    ``m`` comparisons with the reference: Holm rejects every p <= α/m, so a tie has
    |diff| < t_{1−α/2m} SE < mdd, and "tied (closer than mdd)" is always true)."""
    if not groups:
        raise ValueError("compare needs at least one method")
    n_seeds = {len(v) for v in groups.values()}
    if len(n_seeds) != 1 or 0 in n_seeds:
        raise ValueError(f"every method needs the same number (>= 1) of runs; got {n_seeds}")
    if reference is not None and reference not in groups:
        raise ValueError(f"reference {reference!r} is not among {list(groups)}")
    values = {name: _seed_values([Path(r) for r in runs], level) for name, runs in groups.items()}
    rows = []
    for m in metrics:
        seed_means = {name: [float(v[m].mean()) for v in vs] for name, vs in values.items()}
        avg = {name: np.mean([v[m] for v in vs], axis=0) for name, vs in values.items()}
        classes = next(iter(values.values()))[0]["labels"]
        ref = reference or max(seed_means, key=lambda k: np.mean(seed_means[k]))
        by_seeds = next(iter(n_seeds)) >= 3
        tests, mdd = {}, {}
        if by_seeds:
            grids = {name: np.stack([v[m] for v in vs]) for name, vs in values.items()}
            _, results = against_reference(
                grids, classes, reference=ref, confidence=confidence, alpha=alpha
            )
            tests = {k: (r.estimate, r.low, r.high, r.p) for k, r in results.items()}
            mdd = {k: r.mdd for k, r in results.items()}
        else:
            for name in groups:
                if name != ref:
                    tests[name] = paired_class_test(
                        avg[name], avg[ref], classes, confidence=confidence, seed=seed
                    )
        adjusted = dict(zip(tests, holm([t[3] for t in tests.values()]))) if tests else {}
        for name in groups:
            _, lo, hi = class_bootstrap(avg[name], classes, confidence=confidence, seed=seed)
            row = {
                "method": name,
                "metric": m,
                "mean": float(np.mean(seed_means[name])),
                "ci_low": lo,
                "ci_high": hi,
                "reference": ref,
            }
            if len(seed_means[name]) >= 2:
                row["seed_ci"] = mean_ci(seed_means[name], confidence)[1]
            d, dlo, dhi, p = tests.get(name, (0.0, 0.0, 0.0, 1.0))
            p_holm = float(adjusted.get(name, 1.0))
            row.update(
                diff=d,
                diff_low=dlo,
                diff_high=dhi,
                p=p,
                p_holm=p_holm,
                tied=bool(p_holm >= alpha),
                test="seeds" if by_seeds else "classes",
                seeds=len(seed_means[name]),
                verdict=by_seeds,
            )
            if by_seeds:
                row["mdd"] = mdd.get(name, float(np.mean(list(mdd.values()) or [0.0])))
            rows.append(row)
    return pd.DataFrame(rows)


def reference_value(row: Mapping) -> float | None:
    """The reference's mean, from a comparison row that carries the method's (``mean - diff``)."""
    mean = row.get("mean")
    return None if mean is None else float(mean) - float(row["diff"])


def inconclusive(row: Mapping) -> bool:
    """A non-rejected row whose design could not have detected even a drop to 0 from the
    reference (``mdd`` ≥ its value): not a tie, and no verdict. One collapsed seed does it: seed 2
    of direction γ = 0.5 stopped at MAP@R 4.6 (the others 42 and 44), and the detectable
    difference at 3 seeds became 111 points."""
    mdd, ref = row.get("mdd"), reference_value(row)
    if not row["tied"] or mdd is None or ref is None or "seeds" not in row:
        return False
    return np.isfinite(mdd) and row.get("method") != row.get("reference") and beyond_reach(mdd, ref)


def tie_bound(row: Mapping) -> str | None:
    """For a tied row that carries its detectable difference (``mdd``, ``seeds``: 3 seeds or
    more), what the tie can claim ("closer than 2.1 points at 3 seeds"); else None (and for an
    :func:`inconclusive` row, which is no tie)."""
    mdd = row.get("mdd")
    if not row["tied"] or mdd is None or not np.isfinite(mdd) or "seeds" not in row:
        return None
    if inconclusive(row):
        return None
    return closer_than(float(mdd), int(row["seeds"]))


def conclusion(row: Mapping, confidence: float = 0.95) -> str:
    """One sentence for a ``compare`` row, in percentage points.

    >>> conclusion({"method": "point", "reference": "segment", "metric": "recall@1",
    ...             "diff": -0.012, "diff_low": -0.02, "diff_high": -0.004, "p_holm": 0.003,
    ...             "tied": False, "test": "classes"})
    'point vs segment: -1.2 R@1 (95% CI [-2.0, -0.4]; p = 0.003, paired over test classes)'
    >>> conclusion({"method": "a", "reference": "b", "metric": "map@r", "diff": 0.001,
    ...             "diff_low": -0.004, "diff_high": 0.006, "p_holm": 0.7, "tied": True,
    ...             "test": "seeds"})  # doctest: +ELLIPSIS
    'a vs b: no significant difference in MAP@R (+0.1, 95% CI [-0.4, 0.6]; p = 0.7, paired ...'
    >>> conclusion({"method": "a", "reference": "b", "metric": "map@r", "diff": 0.001,
    ...             "diff_low": -0.004, "diff_high": 0.006, "p_holm": 0.7, "tied": True,
    ...             "test": "seeds", "mdd": 0.021, "seeds": 3})  # doctest: +ELLIPSIS
    'a vs b: tied in MAP@R (closer than 2.1 points at 3 seeds; +0.1, 95% CI [-0.4, 0.6]; p = ...'
    >>> conclusion({"method": "a", "reference": "b", "metric": "map@r", "diff": 0.03,
    ...             "diff_low": 0.01, "diff_high": 0.05, "p_holm": 0.001, "tied": False,
    ...             "test": "classes", "verdict": False})
    'a vs b: +3.0 MAP@R (95% CI over test classes [1.0, 5.0]; fewer than 3 seeds: no verdict)'
    """
    name = LABELS.get(row["metric"], row["metric"])
    pct = points(100 * row["diff"], sign=True)
    level = f"{round(100 * confidence)}% CI"
    interval = f"[{points(100 * row['diff_low'])}, {points(100 * row['diff_high'])}]"
    ci = f"{level} {interval}"
    unit = "seeds and test classes" if row["test"] == "seeds" else "test classes"
    p = f"{format_p(row['p_holm'])}, paired over {unit}"
    head = f"{row['method']} vs {row['reference']}: "
    if not row.get("verdict", True):  # fewer than 3 seeds: the test ignores training randomness
        return f"{head}{pct} {name} ({level} over test classes {interval}; {NO_VERDICT})"
    if inconclusive(row):
        spread = spread_wording(float(row["mdd"]), int(row["seeds"]), reference_value(row))
        return f"{head}inconclusive in {name} ({spread}; {pct}, {ci}; {p})"
    closer = tie_bound(row)  # what the design could have detected
    if closer is not None:
        return f"{head}tied in {name} ({closer}; {pct}, {ci}; {p})"
    if row["tied"]:
        return f"{head}no significant difference in {name} ({pct}, {ci}; {p})"
    return f"{head}{pct} {name} ({ci}; {p})"


def verdict_text(
    diff: float,
    low: float,
    high: float,
    p_holm: float,
    tied: bool,
    mdd: float,
    seeds: int,
    reference: float | None = None,
) -> str:
    """A verdict with its effect size (points, 95% CI), its Holm-adjusted p and, for a tie, what
    the design could have detected (``mdd`` in points); a tie whose ``mdd`` reaches the
    ``reference``'s value (points) is :func:`inconclusive`, not a tie.

    >>> verdict_text(-0.4, -1.6, 0.8, 0.4, True, 1.87, 5)
    'tied (closer than 1.9 points at 5 seeds): -0.4 [-1.6, 0.8], p = 0.4'
    >>> verdict_text(-3.1, -4.0, -2.2, 0.00001, False, 1.9, 5)
    'below: -3.1 [-4.0, -2.2], p < 0.0001'
    >>> verdict_text(-15.0, -69.9, 39.9, 0.36, True, 111.1, 3, reference=45.0)[:40]
    'inconclusive (the seeds spread too far: '
    """
    effect = f"{points(diff, sign=True)} [{points(low)}, {points(high)}], {format_p(p_holm)}"
    if tied and reference is not None and beyond_reach(mdd, reference):
        return f"{inconclusive_wording(mdd / 100, seeds, reference / 100)}: {effect}"
    if tied:
        return f"{mdd_wording(mdd / 100, seeds)}: {effect}"
    return f"{'below' if diff < 0 else 'above'}: {effect}"
