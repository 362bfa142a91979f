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
# # One ablation study
#
# **Question.** Does the ablated part or value change retrieval on the test classes? (The exact
# question of this ablation is printed below, from `params.yaml`.)
#
# **Purpose.** Train every arm of one ablation (`ablations.<name>` in params.yaml: named
# variants such as DAAL's parts or RSW's warp, or a sweep such as direction γ, language ω,
# embedding size, m-per-class) for every seed under the main protocol, and compare each arm with
# the reference arm (paired over test classes, or over >= 3 seeds; Holm-adjusted).
#
# **Inputs.** `params.yaml` (`ablations.<name>`, `train`, `datasets.<dataset>`, `losses`,
# `study.seeds`); the prepared dataset.
#
# **Outputs.** one run per arm and seed in `runs_dir/<arm>/seed<seed>/`; in `results_dir`
# (percent): `<ablation>.csv` (one row per run), `<ablation>-comparison.csv`, `<ablation>.json`
# (question and computed conclusions, read by the index).

# %% tags=["parameters"]
dataset = "omniglot"
ablation = "m_per_class"
prepared_dir = "work/prepared/omniglot"
runs_dir = "work/ablations/omniglot/m_per_class"
results_dir = "results/omniglot/ablations"
params_file = "params.yaml"

# %%
# %matplotlib inline
import logging
import sys
from pathlib import Path

import pandas as pd
from IPython.display import Markdown

from dmlstudy.config import load_config
from dmlstudy.pipeline import ablation as A
from dmlstudy.pipeline import experiment_report as X
from dmlstudy.pipeline.findings import ablation_summary
from dmlstudy.pipeline.study_table import comparison_frame, percent_comparison
from dmlstudy.plots import interval_plot
from dmlstudy.plots.comparison import VS_REFERENCE

# the trainer's notices (a replaced run) as report text, not as a stderr block
logging.getLogger("dmlstudy").addHandler(logging.StreamHandler(sys.stdout))
pd.set_option("display.max_colwidth", None)  # tables show whole cells
config = load_config(params_file)
spec = config.ablations[ablation]
question = X.ablation_question(config, ablation)
Markdown(f"**{ablation}.** {question}")

# %%
runs = A.run(config, dataset, ablation, prepared_dir=prepared_dir, runs_dir=runs_dir)
comparison, sentences = A.conclusions(config, ablation, runs_dir)
sentences += A.tuning_notes(config, ablation, dataset)  # where each arm's tuned values come from
not_converged = X.not_converged(runs, "variant")
summary = ablation_summary(ablation, spec.loss, comparison)
X.write_experiment(
    Path(results_dir) / ablation,
    runs,
    comparison,
    {
        "loss": spec.loss,
        "reference": comparison["reference"].iloc[0],
        "question": question,
        "summary": summary,
        "conclusions": sentences,
        "not_converged": not_converged,
    },
)

# %% [markdown]
# ## Result: every arm against the reference arm (test classes, percent)

# %%
X.arm_table(comparison, runs, "variant", metrics=("recall@1", "map@r"))

# %% tags=["headline"]
interval_plot(
    comparison_frame(percent_comparison(comparison), "map@r", runs=runs, label="variant"),
    "MAP@R",
    title=f"{ablation} on {dataset} ({spec.loss})",
    names=VS_REFERENCE,
)

# %%
interval_plot(
    comparison_frame(percent_comparison(comparison), "recall@1", runs=runs, label="variant"),
    "R@1",
    title=f"{ablation} on {dataset} ({spec.loss})",
    names=VS_REFERENCE,
)

# %% [markdown]
# ## What this shows

# %%
Markdown(
    "\n".join(
        [
            f"- {summary}",
            *(f"- {s}" for s in sentences),
            "- Every arm trained to its validation plateau."
            if not not_converged
            else f"- Not converged (hit the epoch cap): {', '.join(not_converged)}.",
        ]
    )
)
