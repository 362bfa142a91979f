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
# **Purpose.** Train every variant of one ablation (`ablations.<name>` in params.yaml: named
# variants such as DAAL's parts or RSW's warp, or a sweep such as direction γ, language ω,
# embedding size, m-per-class) for every seed, and compare them on the test classes.
#
# **Inputs.** `params.yaml` (`ablations.<name>`, `train`, `datasets.<dataset>`, `losses`,
# `study.seeds`); the prepared dataset.
#
# **Outputs.** one run per variant and seed in `runs_dir/<variant>/seed<seed>/`;
# `results_dir/<ablation>.csv` (one row per variant and seed).

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

import pandas as pd

from dmlstudy.config import load_config
from dmlstudy.pipeline.results import summarize
from dmlstudy.pipeline.runs import ablation_variants, run_path, train_settings
from dmlstudy.plots import ablation_lines
from dmlstudy.training import train
from dmlstudy.training.rundir import remove_other_runs

config = load_config(params_file)
variants = ablation_variants(config, ablation)
pd.DataFrame(
    [
        {
            "variant": v.label,
            "loss": v.loss,
            "loss_params": v.loss_params,
            "train": v.train,
            "budget": v.budget,
        }
        for v in variants
    ]
)

# %%
# runs_dir persists between runs of this stage: drop the runs of variants no longer asked for.
remove_other_runs(
    runs_dir, [run_path(runs_dir, v.label, seed) for v in variants for seed in config.study.seeds]
)
rows = []
for v in variants:
    for seed in config.study.seeds:
        s = train_settings(
            config,
            dataset,
            v.loss,
            seed,
            prepared_dir=prepared_dir,
            out_dir=run_path(runs_dir, v.label, seed),
            loss_params=v.loss_params,
            budget=v.budget,
            extra=v.train,
        )
        m = train(s)
        rows.append(
            {
                "variant": v.label,
                "value": v.value,
                "seed": seed,
                **m["test"],
                "best_epoch": m["best_epoch"],
                "train_seconds": m["train_seconds"],
            }
        )
table = pd.DataFrame(rows)
Path(results_dir).mkdir(parents=True, exist_ok=True)
table.to_csv(Path(results_dir) / f"{ablation}.csv", index=False)

# %% [markdown]
# ## Results (test classes; mean and 95% CI half-width over seeds)

# %%
summary = summarize(
    table.rename(columns={"variant": "loss"}), metrics=("recall@1", "map@r", "r_precision", "nmi")
)
summary.index.name = "variant"
summary.round(4)

# %%
swept = table["value"].notna().all()
for metric in ("recall@1", "map@r"):
    display(
        ablation_lines(
            table,
            x="value" if swept else "variant",
            y=metric,
            title=f"{ablation} on {dataset}: {metric} (95% CI over seeds)",
            categorical=not swept,
        )
    )
