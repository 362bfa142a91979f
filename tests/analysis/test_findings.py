"""The computed sentences carry the comparison's own numbers (never hand-written ones)."""

from __future__ import annotations

import re

from dmlstudy.analysis import findings as F
from dmlstudy.analysis.compare import compare
from dmlstudy.evaluation.hierarchical import format_p, mdd_wording
from dmlstudy.training.rundir import run_path


def _groups(root, make_run, noises):
    for name, noise in noises.items():
        make_run(root, name, 0, noise)
    return {name: [run_path(root, name, 0)] for name in noises}


def test_best_sentence_names_the_best_its_interval_and_the_ties(tmp_path, make_run):
    cmp = compare(_groups(tmp_path, make_run, {"good": 1.0, "twin": 1.0, "bad": 2.6}))
    text = F.best_sentence(cmp, "map@r", "on omniglot")
    row = cmp[(cmp["metric"] == "map@r") & (cmp["method"] == cmp["reference"])].iloc[0]
    assert text.startswith(f"Best MAP@R on omniglot: {row['method']}, {100 * row['mean']:.1f}% ")
    assert f"[{100 * row['ci_low']:.1f}, {100 * row['ci_high']:.1f}]" in text
    # one seed: a test over classes of one training run gives no tied/below verdict (issue #16)
    assert "Tied" not in text and "below it" not in text
    assert text.endswith(
        "No tied/below verdict from fewer than 3 seeds: a test over the test "
        "classes of so few training runs ignores training randomness."
    )
    assert "nan" not in text.lower()


def test_best_sentence_gives_verdicts_over_seeds_and_classes_from_three_seeds(tmp_path, make_run):
    noises = {"good": 1.0, "twin": 1.0, "bad": 2.6}
    for name, noise in noises.items():
        for seed in range(3):
            make_run(tmp_path, name, seed, noise)
    cmp = compare({n: [run_path(tmp_path, n, s) for s in range(3)] for n in noises})
    text = F.best_sentence(cmp, "map@r", "on omniglot")
    ref = cmp.loc[cmp["method"] == cmp["reference"], "method"].iloc[0]
    other = "twin" if ref == "good" else "good"
    test = "Holm-adjusted paired test over seeds and test classes, α = 0.05"
    assert f"Tied with it ({test}): {other}." in text
    mdd = 100 * cmp.loc[(cmp["metric"] == "map@r") & (cmp["method"] == other), "mdd"].iloc[0]
    assert f"closer than the smallest difference this design detects ({mdd:.1f} points" in text
    assert text.endswith("Significantly below it: bad.")


def test_arms_sentence_and_ablation_summary_use_the_reference(tmp_path, make_run):
    """One seed per arm: differences with their class interval, "one training run", no verdict
    (issue #16); five seeds: higher / lower / tied (closer than X points) with the p."""
    groups = _groups(tmp_path, make_run, {"ref": 1.0, "same": 1.0, "worse": 2.6})
    cmp = compare(groups, reference="ref")
    text = F.ablation_summary("parts", "daal", cmp)
    assert text.startswith("Ablation parts (daal), every arm vs ref on MAP@R: ")
    worse = cmp[(cmp["metric"] == "map@r") & (cmp["method"] == "worse")].iloc[0]
    assert (
        f"worse {100 * worse['diff']:+.1f} points (95% CI over test classes "
        f"[{100 * worse['diff_low']:.1f}, {100 * worse['diff_high']:.1f}]; fewer than 3 seeds: "
        "no verdict)" in text
    )
    assert "significant" not in text and "lower" not in text
    seeds = {}
    for name, noise in {"ref": 1.0, "same": 1.0, "worse": 2.6}.items():
        seeds[name] = [make_run(tmp_path / "s", name, seed, noise) for seed in range(5)]
    cmp = compare(seeds, reference="ref")
    text = F.ablation_summary("parts", "daal", cmp)
    same = cmp[(cmp["metric"] == "map@r") & (cmp["method"] == "same")].iloc[0]
    assert same["tied"] and f"same {mdd_wording(same['mdd'], 5)} (" in text  # "closer than X"
    worse = cmp[(cmp["metric"] == "map@r") & (cmp["method"] == "worse")].iloc[0]
    assert f"worse lower ({100 * worse['diff']:+.1f} points, {format_p(worse['p_holm'])})" in text


def test_study_findings_cover_both_metrics_convergence_and_what_intervals_mean(tmp_path, make_run):
    cmp = compare(_groups(tmp_path, make_run, {"a": 1.0, "b": 2.6}))
    out = F.study_findings(cmp, "on omniglot", ["b"], seeds=1)
    assert [s.split(":")[0] for s in out[:2]] == ["Best MAP@R on omniglot", "Best R@1 on omniglot"]
    assert "Not converged" in out[2] and out[2].endswith(": b.")
    assert "not training randomness" in out[3]
    assert all(not re.search(r"\bnan\b", s) for s in out)
    mm = F.multimodal_summary(cmp, "on omniglot")
    assert mm.startswith("Trained on coarse labels only, best fine-label MAP@R on omniglot: a,")


def test_an_inconclusive_arm_is_neither_tied_nor_below(tmp_path, make_run):
    """One collapsed seed (noise 30): not rejected, but no tie can be claimed (issue #16)."""
    for name, noises in {
        "good": (1.0, 1.0, 1.0),
        "twin": (1.0, 1.0, 1.0),
        "lost": (1.0, 1.0, 30),
    }.items():
        for seed, noise in enumerate(noises):
            make_run(tmp_path, name, seed, noise)
    names = ("good", "twin", "lost")
    groups = {n: [run_path(tmp_path, n, s) for s in range(3)] for n in names}
    cmp = compare(groups, reference="good")
    text = F.best_sentence(cmp, "map@r", "on omniglot")
    assert "Tied with it (" in text and ": twin." in text, text
    assert text.endswith("No verdict, the seeds spread too far to detect even a drop to 0: lost.")
    lost = cmp[(cmp["metric"] == "map@r") & (cmp["method"] == "lost")].iloc[0]
    assert F.difference_text(lost).startswith("inconclusive (the seeds spread too far")
