"""The multi-modal experiment: every study loss trained on COARSE labels (Omniglot alphabets),
then probed for the fine (character) structure it kept (Roth et al. 2020; Milbich et al. 2020).

Epochs are selected on the coarse labels of the validation split; with ``prepare.val_by: coarse``
those are whole held-out alphabets, never characters of alphabets seen in training. The fine
structure is scored on the test alphabets (``fine_structure_metrics``), and the losses are
compared on fine-label Recall@1 / MAP@R with :mod:`dmlstudy.analysis.compare`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from dmlstudy.analysis.compare import compare
from dmlstudy.config import StudyConfig
from dmlstudy.evaluation import fine_structure_metrics
from dmlstudy.study.ablation import Launcher, train_all
from dmlstudy.study.runs import train_settings
from dmlstudy.training.outputs import load_embeddings
from dmlstudy.training.rundir import retire_other_runs, run_path


def plan(
    config: StudyConfig, dataset: str, *, prepared_dir: str | Path, runs_dir: str | Path
) -> pd.DataFrame:
    """One row per (loss, seed) of ``study.losses × study.seeds`` with its coarse-label settings."""
    rows = []
    for loss in config.study.losses:
        for seed in config.study.seeds:
            s = train_settings(
                config,
                dataset,
                loss,
                seed,
                prepared_dir=prepared_dir,
                out_dir=run_path(runs_dir, loss, seed),
                label_level="coarse",
                budget=config.multimodal.train,
                loss_params=config.multimodal.loss_params.get(loss),
            )
            rows.append({"loss": loss, "seed": seed, "settings": s})
    return pd.DataFrame(rows)


def run(
    config: StudyConfig,
    dataset: str,
    *,
    prepared_dir: str | Path,
    runs_dir: str | Path,
    launcher: Launcher = train_all,
) -> pd.DataFrame:
    """Train every loss and seed on coarse labels; one row per run: coarse test metrics, the fine
    structure kept (fine Recall@1 / MAP@R, within-coarse NMI) and convergence facts."""
    todo = plan(config, dataset, prepared_dir=prepared_dir, runs_dir=runs_dir)
    # runs_dir persists between runs of this stage: runs of losses no longer asked for move to
    # a sibling _retired/ folder (and back when asked again), never deleted
    retire_other_runs(runs_dir, list(todo["settings"]))
    rows = []
    for (_, r), m in zip(todo.iterrows(), launcher(list(todo["settings"]))):
        e = load_embeddings(r["settings"].out_dir)
        fine = fine_structure_metrics(
            e["embeddings"], e["coarse_labels"], e["labels"], m["metric"], seed=r["seed"]
        )
        rows.append(
            {
                "loss": r["loss"],
                "seed": r["seed"],
                "coarse_recall@1": m["test"]["recall@1"],
                "coarse_map@r": m["test"]["map@r"],
                **fine,
                "best_epoch": m["best_epoch"],
                "epochs_run": m.get("epochs_run"),
                "converged": m.get("converged"),
            }
        )
    return pd.DataFrame(rows)


def fine_comparison(config: StudyConfig, runs_dir: str | Path) -> pd.DataFrame:
    """Fine-label R@1 / MAP@R of every loss against the best (paired tests, ties)."""
    groups = {
        loss: [run_path(runs_dir, loss, s) for s in config.study.seeds]
        for loss in config.study.losses
    }
    return compare(groups, level="fine")
