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
# **Question.** Trained with this loss and seed under the dataset's protocol, where does the
# validation MAP@R plateau, which epoch is selected, and did the run converge?
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
import pandas as pd
from IPython.display import Markdown

from dmlstudy.reports.notebook import setup
from dmlstudy.study.runs import RunSpec, settings_provenance, train_settings
from dmlstudy.training import train
from dmlstudy.training.outputs import history_frame

config = setup(params_file)
settings = train_settings(config, dataset, loss, seed, prepared_dir=prepared_dir, out_dir=out_dir)
# %% [markdown]
# ## Settings, and the params.yaml key that decided each
# `set by` is the key to edit to change a value; `shadows` lists the more general keys whose
# other value it overrides (editing those changes nothing for this run).

# %%
settings_provenance(config, RunSpec(f"{dataset}/{loss}", dataset, loss), settings).astype(str)

# %% [markdown]
# ## Result: validation and test metrics of the selected epoch (percent)

# %%
metrics = train(settings)
(100 * pd.DataFrame({k: metrics[k] for k in ("val", "test")})).round(2)

# %% [markdown]
# ## Per epoch: training loss, validation metrics (percent) and the plateau rule's decision
# The evaluation report plots every loss's curves together; this stage draws none, so that
# editing a plot never reruns a training.

# %%
history = history_frame(metrics["history"])
val = [c for c in history.columns if c.startswith("val_")]
history[val] = (100 * history[val]).round(2)
history = history.assign(
    epoch=history["epoch"] + 1, decision=[r.get("decision", "") for r in metrics["history"]]
)
history.astype(object).where(history.notna(), "—").set_index("epoch")

# %% [markdown]
# ## What this shows

# %%
from dmlstudy.training.outputs import resume_note

drops = [r["epoch"] + 1 for r in metrics["history"] if r.get("decision") == "drop"]
resumed = resume_note(metrics["history"])
Markdown(
    f"- Selected epoch {metrics['best_epoch'] + 1} of {metrics['epochs_run']} (best validation "
    f"MAP@R, {100 * metrics['val']['map@r']:.1f}%); test MAP@R "
    f"{100 * metrics['test']['map@r']:.1f}%, R@1 {100 * metrics['test']['recall@1']:.1f}%.\n"
    f"- lr dropped after epoch {', '.join(map(str, drops)) or '(none)'}; "
    + (
        "the run converged (the plateau rule stopped it)."
        if metrics["converged"]
        else f"NOT converged: it reached the epoch cap ({metrics['epochs']}) before the plateau "
        "rule stopped it."
    )
    + f"\n- {metrics['train_seconds']:.1f} s of training, "
    f"{metrics['train_images_per_s']:.0f} images/s on {metrics['device']}."
    + (f"\n- {resumed}" if resumed else "")
)
