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
# # Which loss retrieves unseen classes best?
#
# **Question.** Trained under one protocol on this dataset, which loss retrieves images of test
# classes never seen in training best, and which of the differences are real?
#
# **Purpose.** The study's main table (percent): R@1 and MAP@R with the 95% CI of a bootstrap over
# test classes, a Student-t CI over seeds when there are >= 2, and which losses are tied with the
# best (Holm-adjusted paired test); R@2-8, R-Precision, NMI; whether each run converged (its
# validation curve, selected epoch and lr drop); what each loss trained with; the tuning
# campaign; Recall@K curves; retrieval galleries; a 2-D projection.
#
# **Inputs.** `params.yaml` (`study`, `tuning`); every run in `runs_dir`
# (`<loss>/seed<seed>/metrics.json`, `embeddings_test.npz`); the prepared dataset (gallery
# images); the tuning campaign's `trials.csv` / `winners.csv` in `tuning_dir` when it has run.
#
# **Outputs.** In `results_dir` (percent): `table.csv`, `runs.csv`, `metrics/<loss>.json`
# (`dvc metrics show`), `findings.json`, and `recall_at_1.csv`, `recall_at_k.csv`,
# `val_curves.csv` (`dvc plots show`).

# %% tags=["parameters"]
dataset = "omniglot"
prepared_dir = "work/prepared/omniglot"
runs_dir = "work/runs/omniglot"
results_dir = "results/omniglot"
tuning_dir = "results/tuning/omniglot"
paper_dir = "studies/paper/results"  # the committed paper-grade study: read, not a DVC dependency
checks_dir = "studies/paper/results/checks/omniglot"  # its budget check (committed)
params_file = "params.yaml"
gallery_queries = 4
gallery_k = 6

# %%
# %matplotlib inline
from IPython.display import Markdown

from dmlstudy.analysis import study_table as S
from dmlstudy.analysis.beside import beside_paper_grade
from dmlstudy.analysis.convergence import convergence_table
from dmlstudy.analysis.recipes import recipes
from dmlstudy.analysis.results import LABELS, percent, published_note
from dmlstudy.data import PreparedDataset
from dmlstudy.plots import convergence_curves, headline_figure, recall_at_k
from dmlstudy.plots.gallery import gallery_figures, projection_figure
from dmlstudy.reports.campaign_report import campaign_report
from dmlstudy.reports.notebook import setup
from dmlstudy.study.budget_check import check_cell, display_check, read_check
from dmlstudy.study.runs import train_overrides
from dmlstudy.training.outputs import load_run
from dmlstudy.training.rundir import run_path

config = setup(params_file)
losses, seeds = config.study.losses, config.study.seeds
study = S.load_study(runs_dir, losses, seeds)
findings = S.study_findings(study, dataset)
S.write_results(study, results_dir, findings)

# %% [markdown]
# ## Result: the main table (test classes, percent, best MAP@R first)
# Epochs were selected on the validation classes. With >= 3 seeds, "vs best" is a paired test
# against the best loss over seeds and test classes, Holm-adjusted over the comparisons, with the
# difference and its interval; a tie reads "closer than X points", X the smallest difference the
# design detects. With fewer seeds there is no such column (no verdict). RSW is evaluated with
# Euclidean k-NN on raw embeddings, every other loss with cosine similarity.

# %%
S.display_table(study.table, dataset)

# %% tags=["headline"]
headline_figure(
    {dataset: {LABELS[m]: S.headline_frame(study.table, m) for m in S.HEADLINE}},
    title=f"{dataset}: every loss with its 95% CI (bootstrap over test classes)",
)

# %% [markdown]
# ## Beside the paper-grade study (committed)
# This page trains one seed: its intervals are over test classes only. The paper-grade study
# (`make paper`: every loss on several seeds, intervals and tests over seeds and classes) is
# committed under `studies/paper/results/`; its verdicts are the study's.

# %%
beside = beside_paper_grade(
    study.table, runs_dir=runs_dir, seed=seeds[0], paper_root=paper_dir, dataset=dataset
)
display(Markdown("\n".join(f"- {s}" for s in beside.sentences)), beside.table.round(2))

# %% [markdown]
# ## Published numbers

# %%
Markdown(published_note(dataset))

# %% [markdown]
# ## Convergence: validation MAP@R per epoch
# Every run trains until the plateau rule stops it (`patience` validation rounds without a gain
# of the smoothed curve, `plateau_drops` lr drops, then stop) and is evaluated at its best
# validation epoch (★). A run that reached the epoch cap first, or stopped with its smoothed curve
# still rising, is flagged "not converged", here and in the table above.

# %%
convergence_curves(
    percent(study.curves, ["val_map@r"]), study.marks, title=f"{dataset}: validation MAP@R"
)

# %%
convergence_table(study.marks)

# %% [markdown]
# ## Budget check: would a longer budget change the result?
# The stopping rule is checked on the paper-grade study's seed-0 run of every loss (the protocol
# of this page, one thread per run): each is retrained to twice its stop epoch without the stop
# (`python -m dmlstudy.study.budget_check --profile paper`). A loss passes when val MAP@R gains at
# most 0.5 points and test MAP@R stays inside its run's class-bootstrap interval. The
# extension is the run itself up to the stop ("same epochs up to stop"), then the final lr.

# %%
display(*check_cell(checks_dir, expected=config.for_profile("paper").study.losses))

# %%
# this page's own runs, where the check was run on them (`budget_check` without `--profile`)
own_sentence, own_table = read_check(results_dir, expected=losses)
if own_table is not None:
    display(Markdown(f"This page's runs: {own_sentence}"), display_check(own_table))

# %% [markdown]
# ## What each loss trained with
# Sampler, head, learning rate, proxy lr multiplier and embedding size of each loss's runs (read
# from the runs themselves), and every value that departs from the published defaults or from
# the dataset's shared protocol.

# %%
settings = {loss: load_run(run_path(runs_dir, loss, seeds[0]))["settings"] for loss in losses}
recipes(settings, shared=train_overrides(config, dataset))

# %% [markdown]
# ## The tuning campaign (validation classes only)

# %%
campaign = campaign_report(config, dataset, tuning_dir, settings)
Markdown(campaign.message)

# %%
display(campaign.space)
if campaign.ran:
    display(campaign.effort, campaign.best, campaign.confirmation)
    display(Markdown(campaign.first_rung_note), campaign.first_rung)
    display(Markdown(campaign.margins_note), campaign.margins)

# %% [markdown]
# ## Recall@K on the test classes

# %%
recall_at_k(percent(study.recall_at_k), title=f"{dataset}: Recall@K (%)")

# %% [markdown]
# ## Retrieval galleries
# The same query images for every loss (first seed); neighbours framed green share the query's
# class, red ones do not.

# %%
data = PreparedDataset.load(prepared_dir)
display(
    *gallery_figures(
        runs_dir,
        losses,
        seeds[0],
        data.images,
        data.index["class_name"].to_numpy(),
        n_queries=gallery_queries,
        k=gallery_k,
    )
)

# %% [markdown]
# ## 2-D projection of the best loss's test embeddings

# %%
projection_figure(run_path(runs_dir, study.table.index[0], seeds[0]), study.table.index[0])

# %% [markdown]
# ## What this shows

# %%
Markdown("\n".join(f"- {sentence}" for sentence in findings))
