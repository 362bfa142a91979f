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
# # Evaluate every loss on one dataset
#
# **Purpose.** Compare the losses of the study on the held-out test classes: Recall@K, MAP@R,
# R-Precision and NMI, mean ± 95% CI over seeds (Student t), published numbers beside; Recall@K
# curves; training curves; retrieval galleries; a 2-D projection of test embeddings.
#
# **Inputs.** `params.yaml` (`study.losses`, `study.seeds`); every run in `runs_dir`
# (`<loss>/seed<seed>/metrics.json`, `embeddings_test.npz`); the prepared dataset (gallery images).
#
# **Outputs.** `results_dir/metrics.json` (for `dvc metrics show`), `runs.csv`, `recall_at_1.csv`,
# `recall_at_k.csv`, `val_curves.csv` (for `dvc plots show`).

# %% tags=["parameters"]
dataset = "omniglot"
prepared_dir = "work/prepared/omniglot"
runs_dir = "work/runs/omniglot"
results_dir = "results/omniglot"
params_file = "params.yaml"
gallery_queries = 4
gallery_k = 6

# %%
# %matplotlib inline
import json
from pathlib import Path

import numpy as np

from dmlstudy.config import load_config
from dmlstudy.data import PreparedDataset
from dmlstudy.pipeline import results as R
from dmlstudy.pipeline.runs import run_path, train_overrides
from dmlstudy.plots import (
    metric_points,
    projection_2d,
    recall_at_k,
    retrieval_gallery,
    training_curves,
)

config = load_config(params_file)
losses, seeds = config.study.losses, config.study.seeds
out = Path(results_dir)
out.mkdir(parents=True, exist_ok=True)
runs = R.collect_runs(runs_dir, losses, seeds)
summary = R.summarize(runs)
runs.to_csv(out / "runs.csv", index=False)
(out / "metrics.json").write_text(json.dumps(R.metrics_json(summary), indent=1))
summary[["recall@1"]].reset_index().to_csv(out / "recall_at_1.csv", index=False)

# %% [markdown]
# ## Test-set results (percent, mean ± 95% CI over seeds; sorted by Recall@1)
# Epochs were selected on the validation classes. RSW is evaluated with Euclidean k-NN on raw
# embeddings, every other loss with cosine similarity.

# %%
R.display_table(summary, dataset)

# %% [markdown]
# What a loss ran with beyond the shared protocol: hyper-parameters that differ from the
# published defaults (chosen on the validation classes: `losses.<loss>.per_dataset` in
# `params.yaml`) and the loss's own training settings (e.g. RSW's LayerNorm head).

# %%
R.departures(
    {loss: R.load_run(run_path(runs_dir, loss, seeds[0]))["settings"] for loss in losses},
    shared=train_overrides(config, dataset),
)

# %%
metric_points(
    runs, "recall@1", title=f"{dataset}: Recall@1 (mean, 95% CI over {len(seeds)} seed(s))"
)

# %%
metric_points(runs, "map@r", title=f"{dataset}: MAP@R (mean, 95% CI over {len(seeds)} seed(s))")

# %% [markdown]
# ## Recall@K curves

# %%
curves = R.recall_curves(runs_dir, losses, seeds)
curves.groupby(["loss", "k"], as_index=False)["recall"].mean().to_csv(
    out / "recall_at_k.csv", index=False
)
recall_at_k(curves, title=f"{dataset}: Recall@K on the test classes")

# %% [markdown]
# ## Training curves (validation classes)

# %%
hist = R.histories(runs_dir, losses, seeds)
(
    hist.groupby(["loss", "epoch"], as_index=False)["val_map@r"]
    .mean()
    .to_csv(out / "val_curves.csv", index=False)
)
training_curves(hist, title=f"{dataset}: training loss and validation metrics per epoch")

# %%
runs[["loss", "seed", "best_epoch", "train_seconds", "images_per_s", "metric"]]

# %% [markdown]
# ## Retrieval galleries
# The same query images for every loss (first seed); neighbours framed green share the query's
# class, red ones do not.

# %%
data = PreparedDataset.load(prepared_dir)
first = np.load(run_path(runs_dir, losses[0], seeds[0]) / "embeddings_test.npz")
query_pos = np.flatnonzero(first["is_query"])
query_pos = np.random.default_rng(0).choice(
    query_pos, size=min(gallery_queries, len(query_pos)), replace=False
)
for qi, q in enumerate(query_pos):
    rows_q, rows_nb, hits = [], [], []
    for loss in losses:
        qr, nr, h = R.gallery_neighbors(
            run_path(runs_dir, loss, seeds[0]), np.array([q]), gallery_k
        )
        rows_q.append(qr[0])
        rows_nb.append(nr[0])
        hits.append(h[0])
    display(
        retrieval_gallery(
            data.images[np.array(rows_q)],
            data.images[np.stack(rows_nb)],
            np.stack(hits),
            row_titles=losses,
            suptitle=f"query {qi + 1}: {data.index['class_name'].iloc[rows_q[0]]}",
        )
    )

# %% [markdown]
# ## 2-D projection of test embeddings (best loss by Recall@1, first seed), coloured by coarse label

# %%
best = summary.index[0]
emb = np.load(run_path(runs_dir, best, seeds[0]) / "embeddings_test.npz")
has_coarse = bool((emb["coarse_labels"] >= 0).all())
colour = emb["coarse_labels"] if has_coarse else emb["labels"]
metric = runs.loc[runs["loss"] == best, "metric"].iloc[0]
projection_2d(
    emb["embeddings"],
    colour,
    method="tsne",
    metric=metric,
    title=f"{best}: t-SNE of test embeddings ({'coarse' if has_coarse else 'fine'} labels)",
)
