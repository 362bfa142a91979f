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
# # Prepare a dataset
#
# **Purpose.** Validate `params.yaml`, then turn a dataset's archives into the study's cached form:
# a retrieval index (`index.csv`, one row per image, with a class-disjoint validation split carved
# out of the training classes) and a memory-mappable uint8 image array (`images.npy`).
#
# **Inputs.** `params.yaml` (`data`, `datasets.<dataset>.prepare`, `study.profile`); the archives in
# the data directory (`data.dir`, overridden by `$DMLSTUDY_DATA_DIR`).
#
# **Outputs.** `out_dir/index.csv`, `out_dir/images.npy`, `out_dir/meta.json`.

# %% tags=["parameters"]
dataset = "omniglot"
out_dir = "work/prepared/omniglot"
params_file = "params.yaml"

# %%
# %matplotlib inline
import pandas as pd

from dmlstudy.config import load_config
from dmlstudy.data import PreparedDataset, prepare_dataset
from dmlstudy.plots import image_grid

config = load_config(params_file)
settings = config.prepare_settings(dataset)
display(settings)

# %%
prepare_dataset(
    dataset,
    config.data_dir(),
    out_dir,
    image_size=settings.image_size,
    val_fraction=settings.val_fraction,
    val_by=settings.val_by,
    seed=settings.split_seed,
    max_classes_per_split=settings.max_classes_per_split,
    work_dir=config.data.work_dir,
)
data = PreparedDataset.load(out_dir)
display(pd.DataFrame(data.meta["counts"]).T)

# %% [markdown]
# A few images per split (first image of the first classes).

# %%
for split in ("train", "val", "test"):
    rows, labels = data.split(split)
    first = [rows[labels == c][0] for c in range(min(8, labels.max() + 1))]
    fig = image_grid(
        data.images[first],
        titles=[data.class_names(split)[c] for c in range(len(first))],
        ncols=8,
        suptitle=f"{split}: {len(set(labels))} classes, {len(rows)} images",
    )
    display(fig)
