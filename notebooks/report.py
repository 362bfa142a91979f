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
# # The study at a glance
#
# **Question.** Across the study's datasets, which loss retrieves unseen classes best, what ties
# with it, and what did the ablations and the multi-modal experiment find?
#
# **Purpose.** Assemble the index page (`dmlstudy.reports.report`, a Jinja2 template): the
# question, a headline figure (every loss's R@1 and MAP@R with intervals, ties with the best
# marked), the published numbers beside ours, computed takeaways, then one section per report
# page with its figure and link.
#
# **Inputs.** `params.yaml` (`study`); `results_dir/<dataset>/` (`table.csv`, `findings.json`,
# `recall_at_k.csv`, `ablations/<name>.json` and `-comparison.csv`, `multimodal.json` and
# `multimodal-comparison.csv`); the rendered pages in `reports_dir`; the committed paper-grade
# report in `paper_dir/<dataset>/` (`make paper`), which the page leads with where it exists.
#
# **Outputs.** `index_html`.

# %% tags=["parameters"]
results_dir = "results"
reports_dir = "reports"
index_html = "reports/index.html"
params_file = "params.yaml"
paper_dir = "studies/paper/results"  # the committed paper-grade study: read, not a dependency

# %%
# %matplotlib inline
from IPython.display import Markdown

from dmlstudy.reports import report
from dmlstudy.reports.notebook import setup

config = setup(params_file)
index = report.build_index(config, results_dir, reports_dir, paper_dir)
path = report.write_index(index, index_html)

# %% tags=["headline"]
display(index.headline)

# %% [markdown]
# ## Published numbers beside ours

# %%
Markdown("\n\n".join(f"**{p['dataset']}.** {p['note']}" for p in index.published))

# %% [markdown]
# ## What this shows

# %%
Markdown("\n".join(f"- {sentence}" for sentence in index.takeaways))
