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
# **Question.** Which classes does the study train, validate and test on, and are the splits
# disjoint (no class, and for a coarse validation split no alphabet, in two splits)?
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
from IPython.display import Markdown

from dmlstudy.data import PreparedDataset, prepare_dataset
from dmlstudy.plots.images import split_examples
from dmlstudy.reports.notebook import setup

config = setup(params_file)
settings = config.prepare_settings(dataset)
pd.Series(settings.model_dump(), dtype=object).to_frame("setting")

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
counts = pd.DataFrame(data.meta["counts"]).T
display(counts)

# %% [markdown]
# ## A few images per split (first image of the first classes)

# %% tags=["headline"]
display(*split_examples(data))

# %% [markdown]
# ## What this shows

# %%
index = data.index
in_two_splits = int((index.groupby("label")["split"].nunique() > 1).sum())
coarse = index[index["coarse_label"] >= 0].groupby("split")["coarse_label"].apply(set)
shared_coarse = len(coarse.get("train", set()) & coarse.get("val", set())) if len(coarse) else "n/a"
Markdown(
    f"- {counts.loc['train', 'classes']} training, {counts.loc['val', 'classes']} validation and "
    f"{counts.loc['test', 'classes']} test classes ({int(counts['images'].sum())} images).\n"
    f"- Classes in more than one split: {in_two_splits} (zero-shot retrieval needs 0).\n"
    f"- Validation held out by {settings.val_by} label; coarse classes shared by the training and "
    f"validation splits: {shared_coarse}."
)
