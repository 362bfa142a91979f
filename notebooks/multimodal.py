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
# **Question.** Trained on coarse labels only (Omniglot: alphabets, each with many characters),
# how much of the fine structure (characters) does each loss keep? A loss that collapses each
# class to a point erases it; one that preserves intra-class density keeps it.
#
# **Purpose.** Train every loss on the COARSE labels, select each run's epoch on held-out
# alphabets (`multimodal.train.val_coarse_fraction` of the background alphabets, more than the main
# split's; the test alphabets are the official ones), and score the fine structure on the test
# alphabets: fine-label R@1 / MAP@R (compared with the best
# loss: bootstrap over test classes, Holm-adjusted paired tests) and within-alphabet NMI against
# characters (`dmlstudy.evaluation.fine_structure_metrics`).
#
# **Inputs.** `params.yaml` (`multimodal`, `study.losses`, `study.seeds`, `train`,
# `datasets.<dataset>`, `losses`); the prepared dataset. **Outputs.** runs in
# `runs_dir/<loss>/seed<seed>/`; in `results_dir` (percent): `multimodal.csv`,
# `multimodal-comparison.csv`, `multimodal.json` (question and computed sentence).

# %% tags=["parameters"]
dataset = "omniglot"
prepared_dir = "work/prepared/omniglot"
runs_dir = "work/multimodal/omniglot"
results_dir = "results/omniglot"
params_file = "params.yaml"

# %%
# %matplotlib inline
from pathlib import Path

from IPython.display import Markdown

from dmlstudy.analysis.compare import conclusion
from dmlstudy.analysis.findings import has_verdict, multimodal_summary
from dmlstudy.plots.gallery import projection_figure
from dmlstudy.reports import experiment_report as X
from dmlstudy.reports.notebook import setup
from dmlstudy.study import multimodal as M
from dmlstudy.training.rundir import run_path

config = setup(params_file)
runs = M.run(config, dataset, prepared_dir=prepared_dir, runs_dir=runs_dir)
comparison = M.fine_comparison(config, runs_dir)
summary = multimodal_summary(comparison, f"on {dataset}")
not_converged = X.not_converged(runs, "loss")
stopping = X.stopping_time_note(runs, comparison)  # does the ranking depend on when runs stopped?
X.write_experiment(
    Path(results_dir) / "multimodal",
    runs,
    comparison,
    {
        "question": X.MULTIMODAL_QUESTION,
        "summary": summary,
        "conclusions": [
            # every difference from the best where there is no verdict (< 3 seeds), else the
            # significant ones
            *(
                conclusion(r)
                for _, r in comparison.iterrows()
                if r["method"] != r["reference"] and (not r["tied"] or not has_verdict(r))
            ),
            stopping,
        ],
        "not_converged": not_converged,
    },
)

# %% [markdown]
# ## Result: fine structure kept by coarse-label training (test alphabets, percent)
# Fine = characters, coarse = alphabets; "vs" columns compare each loss with the best on
# fine-label retrieval.

# %%
X.arm_table(
    comparison,
    runs,
    "loss",
    metrics=("recall@1", "map@r"),
    extra=("within_coarse_nmi", "coarse_recall@1", "coarse_map@r"),
    prefix="fine ",
)

# %% tags=["headline"]
title = f"{dataset}: character structure kept after alphabet-level training"
X.metric_plot(comparison, runs, "map@r", "loss", title=title, sort=True, prefix="fine-label ")

# %%
X.metric_plot(comparison, runs, "recall@1", "loss", title=title, sort=True, prefix="fine-label ")

# %% [markdown]
# The best loss's embeddings of its largest test alphabet, coloured by character.

# %%
best = comparison.loc[comparison["metric"] == "map@r", "reference"].iloc[0]
projection_figure(run_path(runs_dir, best, config.study.seeds[0]), best, largest_coarse=True)

# %% [markdown]
# ## What this shows

# %%
Markdown(X.what_this_shows(summary, [stopping], not_converged, "run"))
