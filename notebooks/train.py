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
# # Train one loss
#
# **Purpose.** Train one embedding model with one loss and one seed under the dataset's protocol,
# selecting the epoch on the class-disjoint validation split (never on test).
#
# **Inputs.** `params.yaml` (`train`, `datasets.<dataset>.train`, `losses.<loss>`, `study.profile`);
# the prepared dataset in `prepared_dir`.
#
# **Outputs.** `out_dir/`: `checkpoint.pt`, `best.pt`, `embeddings_val.npz`, `embeddings_test.npz`,
# `metrics.json`, `dvclive/` (per-epoch curves).

# %% tags=["parameters"]
dataset = "omniglot"
loss = "multi_similarity"
seed = 0
prepared_dir = "work/prepared/omniglot"
out_dir = "work/runs/omniglot/multi_similarity/seed0"
params_file = "params.yaml"

# %%
# %matplotlib inline
import pandas as pd

from dmlstudy.config import load_config
from dmlstudy.pipeline.runs import train_settings
from dmlstudy.training import train
from dmlstudy.training.outputs import history_frame

config = load_config(params_file)
settings = train_settings(config, dataset, loss, seed, prepared_dir=prepared_dir, out_dir=out_dir)
pd.Series(settings.model_dump(mode="json"), dtype=object).to_frame("value")

# %%
metrics = train(settings)
pd.DataFrame({k: metrics[k] for k in ("val", "test")})

# %%
print(
    f"best epoch {metrics['best_epoch']} (selected on {metrics['selected_on']}); "
    f"{metrics['train_seconds']:.1f} s training, {metrics['train_images_per_s']:.0f} images/s on "
    f"{metrics['device']}"
)

# %% [markdown]
# Training loss and validation metrics per epoch (the evaluation report plots every loss's curves
# together; this stage draws none, so that editing a plot never reruns a training).

# %%
history_frame(metrics["history"])
