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
# # Loss geometry on a 2-D toy embedding
#
# **Question.** What does each loss *do* to a batch: which samples does it push, in which
# direction, and through which learnable points (proxies, sub-centres, segments)?
#
# **Purpose.** On a small seeded batch of three classes in 2-D, the arrows are `−∂L/∂x` (the
# direction a gradient step moves each sample, autograd), crosses the loss's learnable points
# (proxies, sub-centers, DAAL segment vertices). Also RSW's warped true-class distance for both
# phases.
#
# **Inputs.** `params.yaml` (`study.losses`, `losses`). **Outputs.** figures only.
#
# The language loss uses orthogonal stand-in text embeddings here (no class names exist in the toy).

# %% tags=["parameters"]
params_file = "params.yaml"
num_classes = 3
per_class = 4
seed = 0

# %%
# %matplotlib inline
import pandas as pd
from IPython.display import Markdown

from dmlstudy.losses.geometry import loss_forces, rsw_warp_curves, toy_batch
from dmlstudy.plots import force_panels, warp_curves
from dmlstudy.reports.notebook import setup

config = setup(params_file)
x, y = toy_batch(num_classes, per_class, seed=seed)
forces = {
    name: loss_forces(name, config.published_loss_params(name), x, y, seed=seed)
    for name in config.study.losses
}
table = pd.DataFrame(
    {
        name: {
            "loss": f.loss,
            "max |force|": abs(f.forces).max(),
            "learnable 2-D points": 0 if f.proxies is None else len(f.proxies),
        }
        for name, f in forces.items()
    }
).T
display(table)

# %% tags=["headline"]
force_panels(
    {name: (x, y, f.forces, f.proxies) for name, f in forces.items()},
    suptitle="−∂L/∂x per sample (arrows scaled per panel); crosses: learnable points",
)

# %%
w = rsw_warp_curves(config.published_loss_params("rsw"))
warp_curves(w["d"], {"phase 1": w["phase1"], "phase 2": w["phase2"]})

# %% [markdown]
# ## What this shows

# %%
learnable = table[table["learnable 2-D points"] > 0].index.tolist()
strongest = table["max |force|"].astype(float).idxmax()
Markdown(
    f"- {len(learnable)} of {len(table)} losses move samples through learnable points: "
    f"{', '.join(learnable) or 'none'}; the others act on the batch's pairs only.\n"
    f"- The largest push on this batch comes from {strongest} "
    f"(|∂L/∂x| = {float(table.loc[strongest, 'max |force|']):.3g}); arrows are scaled per panel, "
    "so compare directions across panels, not lengths."
)
