# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Multi-modal experiment: train on coarse labels, probe the fine structure
#
# **Purpose.** Train every loss on the COARSE labels (Omniglot: alphabets, each with many
# characters) and measure how much of the fine structure (characters) the embedding keeps:
# fine-label Recall@1 / MAP@R and within-alphabet NMI against characters
# (`dmlstudy.evaluation.fine_structure_metrics`). A loss that collapses each class to a point
# erases it; one that preserves intra-class density keeps it.
#
# **Inputs.** `params.yaml` (`multimodal`, `study.losses`, `study.seeds`, `train`,
# `datasets.<dataset>`, `losses`); the prepared dataset. **Outputs.** runs in
# `runs_dir/<loss>/seed<seed>/`; `results_dir/multimodal.csv`.

# %% tags=["parameters"]
dataset = "omniglot"
prepared_dir = "work/prepared/omniglot"
runs_dir = "work/multimodal/omniglot"
results_dir = "results/omniglot"
params_file = "params.yaml"

# %%
# %matplotlib inline
from pathlib import Path

import numpy as np
import pandas as pd

from dmlstudy.config import load_config
from dmlstudy.evaluation import fine_structure_metrics
from dmlstudy.pipeline.results import load_embeddings, load_run, summarize
from dmlstudy.pipeline.runs import run_path, train_settings
from dmlstudy.plots import metric_points, projection_2d
from dmlstudy.training import train
from dmlstudy.training.rundir import remove_other_runs

config = load_config(params_file)
# runs_dir persists between runs of this stage: drop the runs of losses no longer asked for.
remove_other_runs(
    runs_dir,
    [run_path(runs_dir, loss, seed) for loss in config.study.losses for seed in config.study.seeds],
)
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
        m = train(s)
        e = load_embeddings(s.out_dir)
        fine = fine_structure_metrics(
            e["embeddings"], e["coarse_labels"], e["labels"], m["metric"], seed=seed
        )
        rows.append(
            {
                "loss": loss,
                "seed": seed,
                "coarse_recall@1": m["test"]["recall@1"],
                "coarse_map@r": m["test"]["map@r"],
                **fine,
            }
        )
table = pd.DataFrame(rows)
Path(results_dir).mkdir(parents=True, exist_ok=True)
table.to_csv(Path(results_dir) / "multimodal.csv", index=False)

# %% [markdown]
# ## Fine structure kept by coarse-label training (test alphabets; mean and 95% CI half-width)

# %%
metrics = ("fine_recall@1", "fine_map@r", "within_coarse_nmi", "coarse_recall@1", "coarse_map@r")
summarize(table, metrics=metrics).round(4)

# %%
metric_points(
    table,
    "fine_recall@1",
    title=f"{dataset}: fine (character) Recall@1 after alphabet-level training",
)

# %%
metric_points(
    table, "within_coarse_nmi", title=f"{dataset}: within-alphabet NMI against characters"
)

# %%
best = table.groupby("loss")["fine_recall@1"].mean().idxmax()
e = load_embeddings(run_path(runs_dir, best, config.study.seeds[0]))
alphabet = e["coarse_labels"] == np.bincount(e["coarse_labels"]).argmax()
projection_2d(
    e["embeddings"][alphabet],
    e["labels"][alphabet],
    method="tsne",
    metric=load_run(run_path(runs_dir, best, config.study.seeds[0]))["metric"],
    title=f"{best}: t-SNE of one test alphabet, coloured by character",
)
