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
# # dmlstudy report
#
# **Purpose.** The study at a glance: for every dataset the evaluation table of every loss
# (test classes, percent, mean ± 95% CI over seeds, published Recall@1 beside), the ablation and
# multi-modal summaries where they ran, and an index page linking every rendered notebook.
#
# **Inputs.** `params.yaml` (`study`); `results_dir/<dataset>/runs.csv`, `ablations/*.csv`,
# `multimodal.csv`.
#
# **Outputs.** `index_html` (links + tables).

# %% tags=["parameters"]
results_dir = "results"
reports_dir = "reports"
index_html = "reports/index.html"
params_file = "params.yaml"

# %%
from pathlib import Path

import pandas as pd

from dmlstudy.config import load_config
from dmlstudy.pipeline import report
from dmlstudy.pipeline.results import summarize

config = load_config(params_file)
study = config.study
print(
    f"datasets {study.datasets}; {len(study.losses)} losses; seeds {study.seeds}; profile "
    f"{study.profile}"
)
tables = report.dataset_tables(results_dir, study.datasets, study.losses)

# %%
for dataset, table in tables.items():
    print(f"{dataset} — test classes, percent")
    display(table)

# %% [markdown]
# ## Ablations and multi-modal experiment (where enabled in `study.ablations` / `study.multimodal`)

# %%
extra = {}
for dataset in study.datasets:
    for name in study.ablations:
        t = pd.read_csv(Path(results_dir) / dataset / "ablations" / f"{name}.csv")
        s = summarize(
            t.rename(columns={"variant": "loss"}), metrics=("recall@1", "map@r"), sort_by="map@r"
        )
        extra[f"{dataset}: ablation {name}"] = s.rename_axis("variant").round(4)
    if dataset in study.multimodal:
        t = pd.read_csv(Path(results_dir) / dataset / "multimodal.csv")
        extra[f"{dataset}: multi-modal"] = summarize(
            t, metrics=("fine_recall@1", "within_coarse_nmi")
        ).round(4)
for title, t in extra.items():
    print(title)
    display(t)
if not extra:
    print(
        "No ablations or multi-modal runs enabled (params.yaml: study.ablations, study.multimodal)."
    )

# %%
html_tables = {d: t.to_html() for d, t in tables.items()}
for title, t in extra.items():
    d = title.split(":")[0]
    html_tables[d] = html_tables.get(d, "") + f"<h3>{title}</h3>" + t.to_html()
page = report.index_html(
    "dmlstudy — deep metric learning losses", report.report_pages(reports_dir), html_tables
)
Path(index_html).parent.mkdir(parents=True, exist_ok=True)
Path(index_html).write_text(page, encoding="utf-8")
print(f"wrote {index_html}")
