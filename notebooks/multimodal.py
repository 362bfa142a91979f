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

from dmlstudy.config import load_config
from dmlstudy.pipeline import multimodal as M
from dmlstudy.pipeline.compare import conclusion
from dmlstudy.pipeline.results import load_embeddings, load_run, summarize
from dmlstudy.pipeline.runs import run_path
from dmlstudy.plots import metric_points, projection_2d

config = load_config(params_file)
table = M.run(config, dataset, prepared_dir=prepared_dir, runs_dir=runs_dir)
Path(results_dir).mkdir(parents=True, exist_ok=True)
table.to_csv(Path(results_dir) / "multimodal.csv", index=False)

# %% [markdown]
# ## Fine structure kept by coarse-label training (test alphabets)

# %%
metrics = ("fine_recall@1", "fine_map@r", "within_coarse_nmi", "coarse_recall@1", "coarse_map@r")
display(summarize(table, metrics=metrics).round(4))
comparison = M.fine_comparison(config, runs_dir)
comparison.to_csv(Path(results_dir) / "multimodal-comparison.csv", index=False)

# %%
display(
    metric_points(
        table,
        "fine_recall@1",
        title=f"{dataset}: fine (character) Recall@1 after alphabet-level training",
    )
)

# %%
display(
    metric_points(
        table, "within_coarse_nmi", title=f"{dataset}: within-alphabet NMI against characters"
    )
)

# %% [markdown]
# ## What this shows

# %%
r1 = comparison[comparison["metric"] == "recall@1"]
best = r1["reference"].iloc[0]
tied = sorted(r1.loc[r1["tied"] & (r1["method"] != best), "method"])
print(
    f"Best fine-character R@1 after alphabet-level training: {best}; tied with it: "
    f"{', '.join(tied) or 'none'}."
)
for _, row in r1[~r1["tied"]].iterrows():
    print(conclusion(row))

# %%
e = load_embeddings(run_path(runs_dir, best, config.study.seeds[0]))
alphabet = e["coarse_labels"] == np.bincount(e["coarse_labels"]).argmax()
display(
    projection_2d(
        e["embeddings"][alphabet],
        e["labels"][alphabet],
        method="tsne",
        metric=load_run(run_path(runs_dir, best, config.study.seeds[0]))["metric"],
        title=f"{best}: t-SNE of one test alphabet, coloured by character",
    )
)
