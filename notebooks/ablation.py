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
from pathlib import Path

from IPython.display import Markdown

from dmlstudy.analysis.findings import ablation_summary
from dmlstudy.plots.comparison import VS_REFERENCE
from dmlstudy.reports import experiment_report as X
from dmlstudy.reports.notebook import setup
from dmlstudy.study import ablation as A

config = setup(params_file)
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
title = f"{ablation} on {dataset} ({spec.loss})"
X.metric_plot(comparison, runs, "map@r", "variant", title=title, names=VS_REFERENCE)

# %%
X.metric_plot(comparison, runs, "recall@1", "variant", title=title, names=VS_REFERENCE)

# %% [markdown]
# ## What this shows

# %%
Markdown(X.what_this_shows(summary, sentences, not_converged, "arm"))
