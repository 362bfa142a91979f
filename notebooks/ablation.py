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

from dmlstudy.config import load_config
from dmlstudy.pipeline import ablation as A
from dmlstudy.plots import ablation_lines

config = load_config(params_file)
table = A.run(config, dataset, ablation, prepared_dir=prepared_dir, runs_dir=runs_dir)
Path(results_dir).mkdir(parents=True, exist_ok=True)
table.to_csv(Path(results_dir) / f"{ablation}.csv", index=False)
display(table)

# %% [markdown]
# ## Every arm against the reference arm (test classes)

# %%
comparison, sentences = A.conclusions(config, ablation, runs_dir)
comparison.to_csv(Path(results_dir) / f"{ablation}-comparison.csv", index=False)
swept = table["value"].notna().all()
for metric in ("recall@1", "map@r"):
    display(
        ablation_lines(
            table,
            x="value" if swept else "variant",
            y=metric,
            categorical=not swept,
            title=f"{ablation} on {dataset}: {metric}",
        )
    )

# %% [markdown]
# ## What this shows

# %%
unconverged = table.loc[~table["converged"].astype(bool), "variant"].tolist()
print("\n".join(sentences))
print(
    "Every arm trained to its validation plateau."
    if not unconverged
    else f"Not converged (hit the epoch cap): {', '.join(unconverged)}"
)
