# The two set-up commands of the README: `make study` and `make test`.
# Both create the virtual environment from this project's own files on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
export DVC_NO_ANALYTICS := 1
export MPLBACKEND := Agg
export HF_HUB_OFFLINE := 1

.PHONY: study test env lint exps paper compare

env: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev,language]"
	touch $@

# params.yaml is checked before DVC parses dvc.yaml: a misspelt key (study.lossess) gets the
# project's "did you mean" and missing data its download instructions, not DVC's "Could not find".
# WORKERS=N trains the out-of-date runs on N dask workers first (one GPU each where there are
# GPUs; SCHEDULER=tcp://host:8786 uses a running dask cluster), then dvc repro records them.
STUDY := $(if $(WORKERS),$(PY) -m dmlstudy.execution.fanout --workers $(WORKERS)$(if $(SCHEDULER), --scheduler $(SCHEDULER)),dvc repro)
study: $(VENV)/.installed
	$(PY) -m dmlstudy.study.check_params params.yaml
	PATH="$(abspath $(VENV))/bin:$$PATH" $(STUDY)

# The paper-grade study (studies/paper/dvc.yaml; README): its training stages side by side (one per
# GPU, else as many as the cores hold one-thread runs; WORKERS=N to choose), main runs seed by seed
# first, each recorded by dvc repro as it ends; COMMIT=1 commits each stage's compact results and
# lock as it ends (resumable in a fresh clone: a stage whose committed compact results hold its
# runs trains nothing). SKIP="direction language" leaves out the stages naming them (a loss the
# campaign is still tuning) and the report.
paper: $(VENV)/.installed
	$(PY) -m dmlstudy.study.check_params params.yaml
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m dmlstudy.execution.paper_study run params.yaml$(if $(WORKERS), --workers $(WORKERS))$(if $(COMMIT), --commit)$(foreach s,$(SKIP), --skip $(s))

# Bring your own loss (docs/adding-a-loss.md): tune LOSS with the campaign's budget, train it on
# the paper-grade seeds, report it against the committed results of the others (none retrained).
compare: $(VENV)/.installed
	@test -n "$(LOSS)" || (echo "usage: make compare LOSS=<registered loss name>"; exit 2)
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m dmlstudy.execution.compare_loss params.yaml --loss $(LOSS)

test: $(VENV)/.installed
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m pytest -n auto --dist loadfile

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The experiments of `dvc exp run -S ...`, one column each: the params.yaml keys and per-loss
# MAP@R that differ between them (dvc exp show lists ~385 columns). ARGS="--metric recall@1 --all".
exps: $(VENV)/.installed
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m dmlstudy.reports.experiments $(ARGS)
