"""Static contract between notebooks/*.py, dvc.yaml and params.yaml (fast; no kernels)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import jupytext
import pytest
import yaml

from dmlstudy.training.fingerprint import loss_modules
from dmlstudy.training.rundir import RUN_LAYOUT

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.py"))
DVC = yaml.safe_load((REPO / "dvc.yaml").read_text())
#: the paper-grade study's pipeline (its own lock; `make paper`)
PAPER = yaml.safe_load((REPO / "studies/paper/dvc.yaml").read_text())
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())


def _parameters(path: Path) -> dict[str, object]:
    nb = jupytext.read(path)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{path.name}: exactly one cell tagged parameters"
    values = {}
    for node in ast.parse(cells[0].source).body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1, (
            f"{path.name}: only `name = literal`"
        )
        values[node.targets[0].id] = ast.literal_eval(node.value)  # literals only
    return values


def test_notebooks_exist_for_every_stage():
    assert {p.stem for p in NOTEBOOKS} == {
        "prepare",
        "train",
        "evaluate",
        "geometry",
        "ablation",
        "multimodal",
        "report",
        "paper",
    }


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_thin_and_documented(path):
    nb = jupytext.read(path)
    first = nb.cells[0]
    assert first.cell_type == "markdown"
    for word in ("**Question.**", "**Purpose.**", "**Inputs.**", "**Outputs.**"):
        assert word in first.source, f"{path.name}: first markdown cell lacks {word}"
    assert "params_file" in _parameters(path)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert not re.search(r"^\s*(def|class) ", code, re.M), (
        f"{path.name}: logic belongs in the package"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_reads_question_result_figure_then_what_it_shows(path):
    """A report's order: the question (first cell), parameters, results, a figure, and last a
    "What this shows" heading followed by a code cell (the sentences are computed, never typed)."""
    cells = jupytext.read(path).cells
    tags = [i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", [])]
    shows = [
        i
        for i, c in enumerate(cells)
        if c.cell_type == "markdown" and c.source.strip() == "## What this shows"
    ]
    assert len(shows) == 1, f"{path.name}: needs one '## What this shows' markdown cell"
    assert tags[0] < shows[0] == len(cells) - 2 and cells[-1].cell_type == "code", (
        f"{path.name}: '## What this shows' must be followed by the last cell, a code cell"
    )
    assert not re.search(r"\d+\.\d+ ?%", cells[shows[0]].source), "typed numbers"


#: Calls that train (or launch trainings): a notebook calls them once, never in a loop.
TRAINING_CALLS = {"train", "train_all", "launcher", "run", "run_campaign", "train_settings"}
#: Names whose iteration builds the study's runs: the package loops over them, not a notebook.
STUDY_SEQUENCES = {"losses", "seeds", "ablations", "variants", "arms", "datasets"}
LOOPS = (ast.For, ast.AsyncFor, ast.While, ast.ListComp, ast.SetComp, ast.DictComp)
LOOPS += (ast.GeneratorExp,)


def _call_name(node: ast.Call) -> str:
    f = node.func
    return f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")


def training_loops(code: str) -> list[str]:
    """Loops in ``code`` that call a training entry point, and ``for`` statements that iterate
    over the study's losses / seeds / arms.

    >>> training_loops("for loss in config.study.losses:\\n    metrics = train(s)")
    ['line 1: loops over losses', 'line 1: calls train in a loop']
    >>> training_loops("figs = [plot(f) for f in frames]\\nx = A.run(config)")
    []
    """
    found = []
    for node in ast.walk(ast.parse(code)):
        if not isinstance(node, LOOPS):
            continue
        if isinstance(node, ast.For | ast.AsyncFor):
            names = {
                n.id if isinstance(n, ast.Name) else n.attr
                for n in ast.walk(node.iter)
                if isinstance(n, ast.Name | ast.Attribute)
            }
            found += [
                f"line {node.lineno}: loops over {n}" for n in sorted(names & STUDY_SEQUENCES)
            ]
        calls = {_call_name(n) for n in ast.walk(node) if isinstance(n, ast.Call)}
        found += [
            f"line {node.lineno}: calls {c} in a loop" for c in sorted(calls & TRAINING_CALLS)
        ]
    return found


def test_training_loop_checker_can_fail():
    bad = "for loss in losses:\n    for seed in seeds:\n        train(train_settings(loss, seed))"
    assert len(training_loops(bad)) == 6  # two loops: each iterates and calls both
    assert training_loops("results = [train(s) for s in todo]") == ["line 1: calls train in a loop"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_have_no_training_loops(path):
    """Loops over losses / seeds that build runs, and loops that train, live in the package
    (pipeline.ablation / multimodal / campaign / study_table); a notebook calls them once."""
    code = "\n".join(c.source for c in jupytext.read(path).cells if c.cell_type == "code")
    code = "\n".join(ln for ln in code.splitlines() if not ln.startswith("%"))
    assert not training_loops(code), f"{path.name}: {training_loops(code)}"


def _commands():
    for name, stage in [*DVC["stages"].items(), *PAPER["stages"].items()]:
        body = stage.get("do", stage)
        yield name, body["cmd"]


@pytest.mark.parametrize("name,cmd", list(_commands()), ids=[n for n, _ in _commands()])
def test_every_notebook_parameter_passed_by_dvc_exists(name, cmd):
    m = re.search(r"notebooks/(\w+)\.py", cmd)
    if m is None:
        return
    known = _parameters(REPO / "notebooks" / f"{m.group(1)}.py")
    for key in re.findall(r"-p (\w+) ", cmd):
        assert key in known, (
            f"stage {name} passes -p {key}, not a parameter of notebooks/{m.group(1)}.py"
        )


def _outs(stage: dict) -> dict[str, dict]:
    """``{path: options}`` of a stage's outs (a plain string has no options)."""
    out: dict[str, dict] = {}
    for entry in stage.get("do", stage)["outs"]:
        out.update(entry if isinstance(entry, dict) else {entry: {}})
    return out


def test_train_outputs_follow_the_package_run_layout():
    outs = _outs(DVC["stages"]["train"])
    run = RUN_LAYOUT.format(loss="${item.loss}", seed="${item.seed}")
    assert f"work/runs/${{item.dataset}}/{run}" in outs
    assert f"-p out_dir work/runs/${{item.dataset}}/{run}" in DVC["stages"]["train"]["cmd"]


@pytest.mark.parametrize(
    "stage,runs",
    [
        ("train", "work/runs/${item.dataset}/${item.loss}/seed${item.seed}"),
        ("ablation", "work/ablations/${item.dataset}/${item.ablation}"),
        ("multimodal", "work/multimodal/${item}"),
    ],
)
def test_training_run_folders_persist_so_a_killed_training_resumes(stage, runs):
    """DVC deletes an output before rerunning its stage unless it is `persist: true`; the trainer
    then resumes, reuses or replaces what it finds (dmlstudy/training/rundir.py)."""
    outs = _outs(DVC["stages"][stage])
    assert outs[runs].get("persist") is True, f"{stage}: {runs} must be persist: true"
    assert not any(o.get("persist") for path, o in outs.items() if path != runs)


def test_stage_params_exist_in_params_yaml():
    def has(key: str) -> bool:
        node = PARAMS
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        return True

    for name, stage in DVC["stages"].items():
        body = stage.get("do", stage)
        for key in body.get("params", []):
            for dataset in PARAMS["datasets"]:
                concrete = key.replace("${item.dataset}", dataset).replace("${item}", dataset)
                concrete = concrete.replace("${item.loss}", "triplet").replace(
                    "${item.ablation}", "daal_parts"
                )
                for profile in ("full", "tiny"):  # every study.profile value must resolve
                    key_p = concrete.replace("${study.profile}", profile)
                    assert has(key_p), f"stage {name}: params key {key_p} missing from params.yaml"


def test_only_the_active_profile_invalidates_work_stages():
    """Editing profiles.tiny must not rerun full-profile preparations/trainings (hours):
    work stages depend on profiles.${study.profile}, only check_params on all of profiles."""
    for name, stage in DVC["stages"].items():
        keys = stage.get("do", stage).get("params", [])
        if name == "check_params":
            assert "profiles" in keys
            continue
        assert "profiles" not in keys, f"stage {name} depends on every profile"
        if "study.profile" in keys:
            assert any(k.startswith("profiles.${study.profile}") for k in keys), (
                f"stage {name} misses its active profile's values"
            )


#: The sections of a profile each stage reads (dmlstudy.config: prepare_settings reads
#: ``prepare``; train_settings ``train`` and ``loss_overrides``).
PROFILE_SECTIONS = {
    "prepare": {"prepare"},
    "fingerprint": {"loss_overrides"},
    "train": {"train", "loss_overrides"},
    "evaluate": {"train", "loss_overrides"},
    "ablation": {"train", "loss_overrides"},
    "multimodal": {"train", "loss_overrides"},
    "report": {"train", "loss_overrides"},
}


@pytest.mark.parametrize("name", sorted(PROFILE_SECTIONS))
def test_stages_depend_on_the_profile_sections_they_read(name):
    """A profile's ``train`` edit must not rerun ``prepare`` (nor a ``prepare`` edit a stage that
    does not read it, but through the prepared data): each stage lists the sections it reads,
    never the whole profile, and every profile spells them out (DVC fails on a missing key)."""
    keys = DVC["stages"][name].get("do", DVC["stages"][name])["params"]
    profile = [k for k in keys if k.startswith("profiles.${study.profile}")]
    assert {k.removeprefix("profiles.${study.profile}.") for k in profile} == (
        PROFILE_SECTIONS[name]
    )
    for values in PARAMS["profiles"].values():
        assert {"prepare", "train", "loss_overrides"} <= set(values)


def _stage_for(notebook: str) -> dict:
    for stage in [*DVC["stages"].values(), *PAPER["stages"].values()]:
        body = stage.get("do", stage)
        if f"notebooks/{notebook}.py" in body["cmd"]:
            return body
    raise AssertionError(f"no stage runs notebooks/{notebook}.py")


@pytest.mark.parametrize("notebook", ["train", "ablation", "multimodal"])
def test_training_stages_depend_on_all_code_that_shapes_a_run(notebook):
    """A training's result depends on the code it executes: the loss's and the trainer's
    modules, the sampler (dmlstudy/data) and the validation metric that selects its epoch
    (dmlstudy/evaluation), by meaning (work/code/<loss>.json, the ``fingerprint`` stage), and on
    the params merge (pipeline/runs.py): an edit there that changes what runs must rerun it."""
    deps = _stage_for(notebook)["deps"]
    code = "work/code/${item.loss}.json" if notebook == "train" else "work/code"
    for dep in (code, "dmlstudy/study/runs.py", "dmlstudy/config"):
        assert dep in deps, f"stage running notebooks/{notebook}.py lacks dep {dep}"


def test_training_stages_do_not_depend_on_code_bytes():
    """A comment in one loss is not a retrain of every loss: the trainings depend on the
    fingerprints of meaning, not on the source folders, which only the cheap ``fingerprint``
    stage reads (its outputs come out the same after a comment edit)."""
    folders = ("dmlstudy/losses", "dmlstudy/models", "dmlstudy/training")
    for notebook in ("train", "ablation", "multimodal"):
        deps = _stage_for(notebook)["deps"]
        assert not set(folders) & set(deps), f"notebooks/{notebook}.py's stage reads bytes"
    assert not {"dmlstudy/data", "dmlstudy/evaluation"} & set(_stage_for("train")["deps"])
    fingerprint = DVC["stages"]["fingerprint"]
    assert {*folders, "dmlstudy/data", "dmlstudy/evaluation"} <= set(fingerprint["deps"])
    assert fingerprint["outs"] == ["work/code"]


def test_index_page_waits_for_every_rendered_page():
    """reports/index.html links every rendered page: the report stage must run after the stages
    whose pages are not already upstream of it through results/ (geometry writes no results)."""
    assert "reports/geometry.html" in _stage_for("report")["deps"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_projections_use_the_runs_metric(path):
    """projection_2d L2-normalizes by default (cosine): RSW's Euclidean embeddings must be
    projected raw, so every call passes the run's metric."""
    code = "\n".join(c.source for c in jupytext.read(path).cells if c.cell_type == "code")
    for node in ast.walk(
        ast.parse("\n".join(ln for ln in code.splitlines() if not ln.startswith("%")))
    ):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "projection_2d":
            assert "metric" in {k.arg for k in node.keywords}, (
                f"{path.name}: projection_2d without metric="
            )


def _imported_package_files(path: Path) -> set[str]:
    """Repository paths of the dmlstudy modules a notebook imports directly."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dmlstudy"):
            base = node.module.replace(".", "/")
            for alias in node.names:  # `from dmlstudy.analysis import results` imports a module
                sub = f"{base}/{alias.name}"
                found.add(
                    sub + ".py"
                    if (REPO / f"{sub}.py").is_file()
                    else sub
                    if (REPO / sub).is_dir()
                    else base + ("" if (REPO / base).is_dir() else ".py")
                )
        elif isinstance(node, ast.Import):
            found |= {a.name.replace(".", "/") for a in node.names if a.name.startswith("dmlstudy")}
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_imported_package_module_is_a_stage_dependency(path):
    """An edit to code a notebook runs must rerun its stage: each dmlstudy module it imports is
    listed in the stage's deps, itself or through its folder, or is one whose meaning the
    stage's code fingerprint (work/code, the ``fingerprint`` stage) covers."""
    deps = [d for d in _stage_for(path.stem)["deps"] if isinstance(d, str)]
    covered: set[str] = set()
    if any(d.startswith("work/code") for d in deps):
        covered = {m.replace(".", "/") for m in loss_modules()}  # the trainer's and the losses'
    for module in _imported_package_files(path):
        name = module.removesuffix(".py")
        fingerprinted = name in covered or any(c.startswith(name + "/") for c in covered)
        assert fingerprinted or any(
            module == d or module.startswith(d.rstrip("/") + "/") for d in deps
        ), f"stage running notebooks/{path.name} imports {module} but does not list it in deps"


def _all_outs() -> dict[str, dict]:
    out: dict[str, dict] = {}
    for stage in DVC["stages"].values():
        body = stage.get("do", stage)
        for kind in ("outs", "metrics", "plots"):
            for entry in body.get(kind, []):
                out.update(entry if isinstance(entry, dict) else {entry: {}})
    return out


def test_results_are_small_uncached_outputs_committed_to_git():
    """Everything under results/ is written by a stage, not cached by DVC (so git holds it) and
    not ignored by git; rendered HTML stays out of git."""
    outs = {p: o for p, o in _all_outs().items() if p.startswith("results/")}
    assert outs, "no stage writes results/"
    for path, options in outs.items():
        assert (options or {}).get("cache") is False, f"{path} must be cache: false (committed)"
    ignored = (REPO / ".gitignore").read_text().split()
    assert not any(line.strip("/").startswith("results") for line in ignored)
    assert "/reports" in ignored and "dvc.lock" not in ignored
    evaluate = DVC["stages"]["evaluate"]["do"]
    assert "results/${item}/metrics" in {next(iter(m)) for m in evaluate["metrics"]}
    assert "results/tuning" in evaluate["deps"]  # the campaign's committed trials
    assert (REPO / "results" / "tuning").is_dir()  # a dependency must exist


def test_dvc_plots_templates_exist():
    for path, options in _all_outs().items():
        template = (options or {}).get("template", "")
        if template.endswith(".json"):
            assert (REPO / template).is_file(), f"{path}: template {template} is missing"


def test_stages_that_read_the_published_numbers_depend_on_their_file():
    """results.py reads published.yaml: a stage that depends on results.py must depend on it too
    (an added published number reruns the pages that show it)."""
    for name, stage in [*DVC["stages"].items(), *PAPER["stages"].items()]:
        deps = stage.get("do", stage).get("deps", [])
        if "dmlstudy/analysis/results.py" in deps:
            assert "dmlstudy/analysis/published.yaml" in deps, name


def test_the_default_dvc_repro_reaches_no_stage_of_the_paper_grade_study():
    """`dvc repro` runs dvc.yaml's stages and every stage upstream of them; DVC joins
    studies/paper/dvc.yaml into the same graph, so a root stage that depends on a folder holding
    the paper study's outputs pulls it in (the report's `results` dependency did while those lay
    in results/paper/: `make study` started the ~10-h paper-grade study after its geometry)."""
    from collections import defaultdict

    dot = subprocess.run(
        [sys.executable, "-m", "dvc", "dag", "--full", "--dot"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    parents = defaultdict(set)
    for up, down in re.findall(r'"([^"]+)" -> "([^"]+)"', dot):
        parents[down].add(up)
    todo = [n for n in set(parents) | {p for ps in parents.values() for p in ps}]
    todo = [n for n in todo if not n.startswith("studies/")]
    assert "report" in todo and any(n.startswith("train@") for n in todo)
    seen: set[str] = set()
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo += parents[node]
    assert not [n for n in seen if n.startswith("studies/")]
