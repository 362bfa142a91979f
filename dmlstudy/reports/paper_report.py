"""The paper-grade study's tables and verdicts, from its committed compact folders alone.

:func:`write_report` reads ``studies/paper/results/runs/<profile>/<dataset>/``
(:mod:`dmlstudy.study.paper`) and writes, below ``studies/paper/results/<dataset>/``:

- ``table.csv``, ``runs.csv``, ``metrics/``, ``findings.json``, ``recall_at_1.csv``,
  ``recall_at_k.csv``, ``val_curves.csv`` — the main comparison, as the default pipeline's
  evaluation writes them (:func:`dmlstudy.analysis.study_table.write_results`), over the seeds
  every loss has finished; with >= 3 seeds its verdicts come from the seeds × classes test;
- ``ablations/<name>-comparison.csv`` — each ablation whose every arm and seed is done, its arms
  against the reference arm by the same test; ``ablations/<name>-runs.csv`` its runs, one row
  per arm and seed;
- ``transfer.csv`` — with ``transfer=<profile>`` (``wide64``): the one-seed ranking of that
  profile beside the paper-grade ranking, Kendall's τ and Spearman's ρ between them, and which
  paper-grade verdicts it contradicts (a loss found below the best that scores at least as
  high as the best under the other profile);
- ``findings.json`` — the computed sentences: all of them (``sentences``) and by part
  (``main``, ``ablations``, ``transfer``; the default study's index leads with main and transfer);
- ``status.json`` — what is done and what is pending (a partial study reports its finished part
  and names the rest; nothing is extrapolated).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from scipy import stats

from dmlstudy.analysis.compact import is_complete
from dmlstudy.analysis.compare import LABELS, compare, conclusion, reference_value, verdict_text
from dmlstudy.analysis.convergence import run_marks
from dmlstudy.analysis.findings import difference_text, has_verdict
from dmlstudy.analysis.study_table import SEED_T, load_study, study_findings, write_results
from dmlstudy.config import StudyConfig
from dmlstudy.reports.experiment_report import ablation_question
from dmlstudy.study.paper import ablation_seeds, arm_dir, main_dir, main_seeds
from dmlstudy.study.runs import ablation_variants
from dmlstudy.training.outputs import load_run

HEADLINE = "map@r"


def finished_seeds(
    runs: Path, profile: str, dataset: str, losses: Sequence[str], seeds: Sequence[int]
) -> tuple[list[int], dict[str, list[int]]]:
    """(the seeds every loss has finished, {loss: its missing seeds}): the study trains seed by
    seed (``paper_study run``), so a partial study is compared over the seeds all losses have."""
    pending = {
        loss: missing
        for loss in losses
        if (
            missing := [
                s for s in seeds if not is_complete(main_dir(runs, profile, dataset, loss, s))
            ]
        )
    }
    common = [s for s in seeds if not any(s in m for m in pending.values())]
    return common, pending


def transfer_table(
    paper: pd.DataFrame, other: pd.DataFrame, metric: str = HEADLINE
) -> pd.DataFrame:
    """Per loss: the paper-grade mean and rank, the other profile's score and rank, and whether
    the other profile contradicts the paper-grade verdict (``below`` the best there, yet at
    least as high as the paper-grade best here). ``paper``: a ``table.csv`` (percent, with
    ``<metric>_tied`` and ``<metric>_best``); ``other``: per-loss ``<metric>`` (percent).

    >>> p = pd.DataFrame({"map@r": [50.0, 45.0, 40.0], "map@r_tied": [True, True, False],
    ...                   "map@r_best": [True, False, False]}, index=["a", "b", "c"])
    >>> o = pd.DataFrame({"map@r": [44.0, 46.0, 47.0]}, index=["a", "b", "c"])
    >>> transfer_table(p, o)["contradicts"].tolist()
    [False, False, True]
    """
    common = [loss for loss in paper.index if loss in other.index]
    t = pd.DataFrame(
        {
            "paper": paper.loc[common, metric],
            "paper_rank": paper.loc[common, metric].rank(ascending=False, method="min"),
            "other": other.loc[common, metric],
            "other_rank": other.loc[common, metric].rank(ascending=False, method="min"),
            "paper_verdict": [
                "best"
                if paper.loc[x, f"{metric}_best"]
                else "no verdict (fewer than 3 seeds)"
                if f"{metric}_tied" not in paper.columns
                else ("tied" if paper.loc[x, f"{metric}_tied"] else "below")
                for x in common
            ],
        }
    )
    best = t.index[t["paper_verdict"] == "best"][0]
    t["contradicts"] = (t["paper_verdict"] == "below") & (t["other"] >= t.loc[best, "other"])
    t.index.name = "loss"
    return t


def transfer_display(t: pd.DataFrame, other: str) -> pd.DataFrame:
    """:func:`transfer_table` as the report shows it: percent with one decimal, whole ranks,
    the verdict and whether ``other`` contradicts it in words.

    >>> t = pd.DataFrame({"paper": [50.0, 40.0], "paper_rank": [1.0, 2.0], "other": [44.0,
    ...     46.0], "other_rank": [2.0, 1.0], "paper_verdict": ["best", "below"],
    ...     "contradicts": [False, True]}, index=pd.Index(["a", "b"], name="loss"))
    >>> [str(x) for x in transfer_display(t, "wide64").loc["b"]]
    ['40.0', '2', '46.0', '1', 'below', 'yes']
    """
    return pd.DataFrame(
        {
            "MAP@R, paper-grade": t["paper"].map("{:.1f}".format),
            "rank": t["paper_rank"].astype(int),
            f"MAP@R, {other} (one seed)": t["other"].map("{:.1f}".format),
            f"rank ({other})": t["other_rank"].astype(int),
            "paper-grade verdict": t["paper_verdict"],
            f"contradicted by {other}": t["contradicts"].map({True: "yes", False: "no"}),
        },
        index=t.index,
    )


def transfer_sentences(t: pd.DataFrame, other: str) -> list[str]:
    """Rank correlations and the contradicted verdicts, in words."""
    tau = stats.kendalltau(t["paper"], t["other"]).statistic
    rho = stats.spearmanr(t["paper"], t["other"]).statistic
    out = [
        f"The one-seed ranking of {len(t)} losses under profile {other} agrees with the "
        f"paper-grade ranking to Kendall τ = {tau:.2f} (Spearman ρ = {rho:.2f}); one training "
        "run per loss, so this is a check of transfer, not a verdict."
    ]
    bad = list(t.index[t["contradicts"]])
    best = t.index[t["paper_verdict"] == "best"][0]
    if not t["paper_verdict"].isin(["best", "tied", "below"]).all():
        out.append("The paper-grade study has fewer than 3 seeds yet: no verdict to contradict.")
    elif bad:
        out.append(
            f"It contradicts {len(bad)} paper-grade verdict(s): {', '.join(bad)} "
            f"(below {best} in the paper-grade study) score(s) at least as high as {best} "
            f"under {other}."
        )
    else:
        out.append(f"It contradicts no paper-grade 'below {best}' verdict.")
    return out


def arm_runs(groups: dict[str, list[Path]], seeds: Sequence[int]) -> pd.DataFrame:
    """Each arm's runs, one row per seed (percent): test MAP@R and R@1, epochs run and whether
    the plateau rule stopped it, from the compact folders' ``metrics.json`` — so that a page shows
    which seed a spread comes from (a collapsed seed reads as one, not as a wide interval)."""
    rows = []
    for arm, folders in groups.items():
        for seed, folder in zip(seeds, folders, strict=True):
            m = load_run(folder)
            marks = run_marks(m)
            rows.append(
                {
                    "arm": arm,
                    "seed": seed,
                    **{k: 100 * float(m["test"][k]) for k in ("map@r", "recall@1")},
                    "epochs_run": marks["epochs_run"],
                    "converged": marks["converged"],
                }
            )
    return pd.DataFrame(rows).round(4)


def ablation_display(comparison: pd.DataFrame, runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """An ablation's arms as the report shows them (percent): per metric its mean over seeds, the
    Student-t interval over seeds, each seed's value (with ``runs``, :func:`arm_runs`) and the
    verdict against the reference arm with its effect size, Holm-adjusted p and, for a tie, the
    smallest difference the design detects.

    >>> cmp = pd.DataFrame({"method": ["ref", "arm"], "metric": "map@r", "reference": "ref",
    ...     "mean": [.5, .48], "seed_ci": [.01, .012], "diff": [0, -.02], "diff_low": [0, -.05],
    ...     "diff_high": [0, .01], "p_holm": [1, .2], "tied": True, "mdd": .041, "seeds": 3,
    ...     "verdict": True})
    >>> ablation_display(cmp).loc["arm"].tolist()
    ['48.0', '± 1.2', 'tied (closer than 4.1 points at 3 seeds): -2.0 [-5.0, 1.0], p = 0.2']
    """
    out: dict[str, dict[str, str]] = {}
    for _, r in comparison.iterrows():
        name = LABELS.get(r["metric"], r["metric"])
        row = out.setdefault(r["method"], {})
        row[name] = f"{100 * r['mean']:.1f}"
        if "seed_ci" in r.index and pd.notna(r["seed_ci"]):
            row[f"{name} ({SEED_T})"] = f"± {100 * r['seed_ci']:.1f}"
        if runs is not None and r["metric"] in runs.columns:
            mine = runs[runs["arm"] == r["method"]].sort_values("seed")
            seeds = ", ".join(str(s) for s in mine["seed"])
            row[f"{name}, seeds {seeds}"] = ", ".join(f"{v:.1f}" for v in mine[r["metric"]])
        vs = f"{name} vs {r['reference']}"
        if r["method"] == r["reference"]:
            row[vs] = "reference"
        elif not has_verdict(r):
            row[vs] = difference_text(r)
        else:
            points = (100 * r[c] for c in ("diff", "diff_low", "diff_high"))
            row[vs] = verdict_text(
                *points,
                float(r["p_holm"]),
                bool(r["tied"]),
                100 * r["mdd"],
                int(r["seeds"]),
                reference=100 * reference_value(r),
            )
    table = pd.DataFrame.from_dict(out, orient="index")
    table.index.name = "arm"
    return table


def ablation_sections(
    config: StudyConfig, profile: str, out: Path
) -> list[tuple[str, pd.DataFrame | None]]:
    """Per ablation of ``profile``: its question and its arms' table (None while pending: a
    comparison file from an earlier report is not shown unless ``status.json`` says done)."""
    config = config.for_profile(profile)
    done = json.loads((out / "status.json").read_text())["done"]
    sections = []
    for name in config.study.ablations:
        path = out / "ablations" / f"{name}-comparison.csv"
        runs = out / "ablations" / f"{name}-runs.csv"
        table = (
            ablation_display(pd.read_csv(path), pd.read_csv(runs) if runs.is_file() else None)
            if f"ablation {name}" in done
            else None
        )
        sections.append((f"{name}: {ablation_question(config, name)}", table))
    return sections


def _ablations(
    config: StudyConfig, profile: str, dataset: str, runs: Path, out: Path, status: dict
) -> list[str]:
    sentences: list[str] = []
    if not config.study.ablations:
        return sentences
    seeds = ablation_seeds(config, profile)
    for name in config.study.ablations:
        arms = [v.label for v in ablation_variants(config, name)]
        groups = {a: [arm_dir(runs, profile, dataset, name, s, a) for s in seeds] for a in arms}
        missing = [str(p) for g in groups.values() for p in g if not is_complete(p)]
        if missing:
            status["pending"][f"ablation {name}"] = len(missing)
            continue
        reference = config.ablations[name].reference or arms[0]
        table = compare(groups, reference=reference)
        (out / "ablations").mkdir(parents=True, exist_ok=True)
        table.to_csv(out / "ablations" / f"{name}-comparison.csv", index=False)
        arm_runs(groups, seeds).to_csv(out / "ablations" / f"{name}-runs.csv", index=False)
        sentences += [
            f"{name}: {conclusion(r)}" for _, r in table.iterrows() if r["method"] != reference
        ]
        status["done"][f"ablation {name}"] = len(arms) * len(seeds)
    return sentences


def write_report(
    config: StudyConfig,
    profile: str,
    dataset: str,
    results: Path,
    *,
    out: Path | None = None,
    transfer: str | None = None,
) -> list[Path]:
    """Write the paper-grade tables of ``dataset`` (module docstring); returns the files."""
    config = config.for_profile(profile)  # its losses and ablations (profiles.<profile>)
    runs = results / "runs"
    out = out or results / dataset
    out.mkdir(parents=True, exist_ok=True)
    losses = list(config.study.losses)
    seeds, pending = finished_seeds(runs, profile, dataset, losses, main_seeds(config, profile))
    status: dict = {
        "profile": profile,
        "seeds": main_seeds(config, profile),
        "done": {"main seeds": seeds},
        "pending": {"main": pending} if pending else {},
    }
    parts: dict[str, list[str]] = {"main": [], "ablations": [], "transfer": []}
    written = []
    table = None
    if seeds:
        study = load_study(runs / profile / dataset, losses, seeds)
        parts["main"] = study_findings(study, dataset)
        write_results(study, out, parts["main"])
        table = study.table
        written.append(out / "table.csv")
    parts["ablations"] = _ablations(config, profile, dataset, runs, out, status)
    if transfer is not None and table is not None:
        t_seeds, t_pending = finished_seeds(
            runs, transfer, dataset, losses, main_seeds(config, transfer)
        )
        if t_pending:  # compared once every loss has its run: the best must be among them
            status["pending"][f"transfer {transfer}"] = t_pending
        elif len(losses) >= 3:
            other = load_study(runs / transfer / dataset, losses, t_seeds).table
            t = transfer_table(table, other)
            t.round(4).to_csv(out / "transfer.csv")
            parts["transfer"] = transfer_sentences(t, transfer)
            written.append(out / "transfer.csv")
    # every sentence (the report's), and by part (the index leads with main and transfer)
    sentences = parts["main"] + parts["ablations"] + parts["transfer"]
    findings = {"sentences": sentences, **parts}
    (out / "findings.json").write_text(json.dumps(findings, indent=1))
    (out / "status.json").write_text(json.dumps(status, indent=1))
    return [*written, out / "findings.json", out / "status.json"]
