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
# # The paper-grade study
#
# **Question.** With training randomness counted — every loss on several seeds, every ablation
# arm on several seeds, tests over seeds and test classes together — which loss retrieves unseen
# classes best, which are tied with it (closer than the design can detect), and does the ranking
# survive a wider network?
#
# **Purpose.** Read the committed compact results of `studies/paper/dvc.yaml`
# (`studies/paper/results/runs/`; nothing is retrained here) and write the study's tables and
# verdicts (`dmlstudy.reports.paper_report`). A partial study reports its finished part and
# names the rest.
#
# **Inputs.** `params.yaml` (`study`, `profiles.<profile>`, `ablations`); `results_dir/runs/`.
#
# **Outputs.** `results_dir/<dataset>/`: `table.csv`, `runs.csv`, `findings.json`,
# `ablations/<name>-comparison.csv`, `transfer.csv`, `status.json`.

# %% tags=["parameters"]
params_file = "params.yaml"
profile = "paper"
dataset = "omniglot"
results_dir = "studies/paper/results"
transfer = "wide64"
checks_dir = "studies/paper/results/checks/omniglot"  # the budget check's CSV (its own command)

# %%
import json
from pathlib import Path

import pandas as pd
from IPython.display import Markdown, display

from dmlstudy.analysis.results import LABELS
from dmlstudy.analysis.study_table import HEADLINE, display_table, headline_frame, read_table
from dmlstudy.plots import headline_figure
from dmlstudy.reports.notebook import setup
from dmlstudy.reports.paper_report import ablation_sections, transfer_display, write_report
from dmlstudy.study.budget_check import check_cell

config = setup(params_file)
written = write_report(config, profile, dataset, Path(results_dir), transfer=transfer or None)
out = Path(results_dir) / dataset
status = json.loads((out / "status.json").read_text())

# %% [markdown]
# ## What has run

# %%
pending = status["pending"]
done = status["done"]["main seeds"]
Markdown(
    f"Profile `{status['profile']}`, seeds {status['seeds']}: every loss has finished seeds "
    f"{done or 'none yet'}"
    + ("; fewer than 3 seeds per loss, so no tied/below verdict. " if len(done) < 3 else ". ")
    + (f"Pending: {json.dumps(pending)}." if pending else "Nothing is pending.")
)

# %% [markdown]
# ## The main comparison (percent)

# %%
table = read_table(out / "table.csv") if (out / "table.csv").is_file() else None
display_table(table, dataset) if table is not None else Markdown("No loss has every seed yet.")

# %% tags=["headline"]
(
    headline_figure(
        {dataset: {LABELS[m]: headline_frame(table, m) for m in HEADLINE}},
        title=f"{dataset}, paper-grade: every loss with its 95% CI (test classes; seeds in the "
        "table's tests)",
    )
    if table is not None
    else Markdown("No figure yet.")
)

# %% [markdown]
# ## Would a longer budget change the result? (budget check)
# Seed 0 of every loss retrained to twice its stop epoch without the stop
# (`python -m dmlstudy.study.budget_check --profile paper`): a loss passes when val MAP@R gains
# at most 0.5 points and test MAP@R stays inside its run's class-bootstrap interval.

# %%
display(*check_cell(checks_dir, expected=config.for_profile(profile).study.losses))

# %% [markdown]
# ## Ablations: does each part, each value, matter?
# Every arm on the profile's ablation seeds, compared with its reference arm by the paired test
# over seeds and test classes (Holm over the arms); a tie reads "closer than X points", X the
# smallest difference this design detects with 80% power.

# %%
for question, arms in ablation_sections(config, profile, out):
    display(Markdown(f"**{question}**"), arms if arms is not None else Markdown("Pending."))

# %% [markdown]
# ## Does the ranking transfer to the 64-channel network at 64-d?

# %%
path = out / "transfer.csv"
(
    transfer_display(pd.read_csv(path, index_col="loss"), transfer)
    if path.is_file()
    else Markdown("Not run yet.")
)

# %% [markdown]
# ## What this shows

# %%
sentences = json.loads((out / "findings.json").read_text())["sentences"]
Markdown("\n".join(f"- {s}" for s in sentences) or "Nothing to report yet.")
