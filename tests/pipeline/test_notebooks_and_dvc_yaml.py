"""Static contract between notebooks/*.py, dvc.yaml and params.yaml (fast; no kernels)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import jupytext
import pytest
import yaml

from dmlstudy.pipeline.runs import RUN_LAYOUT

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.py"))
DVC = yaml.safe_load((REPO / "dvc.yaml").read_text())
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())


def _parameters(path: Path) -> dict[str, object]:
    nb = jupytext.read(path)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{path.name}: exactly one cell tagged parameters"
    values = {}
    for node in ast.parse(cells[0].source).body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1, f"{path.name}: only `name = literal`"
        values[node.targets[0].id] = ast.literal_eval(node.value)  # literals only
    return values


def test_notebooks_exist_for_every_stage():
    assert {p.stem for p in NOTEBOOKS} == {"prepare", "train", "evaluate", "geometry", "ablation", "multimodal", "report"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_thin_and_documented(path):
    nb = jupytext.read(path)
    first = nb.cells[0]
    assert first.cell_type == "markdown"
    for word in ("**Purpose.**", "**Inputs.**", "**Outputs.**"):
        assert word in first.source, f"{path.name}: first markdown cell lacks {word}"
    assert "params_file" in _parameters(path)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert not re.search(r"^\s*(def|class) ", code, re.M), f"{path.name}: logic belongs in the package"


def _commands():
    for name, stage in DVC["stages"].items():
        body = stage.get("do", stage)
        yield name, body["cmd"]


@pytest.mark.parametrize("name,cmd", list(_commands()), ids=[n for n, _ in _commands()])
def test_every_notebook_parameter_passed_by_dvc_exists(name, cmd):
    m = re.search(r"notebooks/(\w+)\.py", cmd)
    if m is None:
        return
    known = _parameters(REPO / "notebooks" / f"{m.group(1)}.py")
    for key in re.findall(r"-p (\w+) ", cmd):
        assert key in known, f"stage {name} passes -p {key}, not a parameter of notebooks/{m.group(1)}.py"


def test_train_outputs_follow_the_package_run_layout():
    outs = DVC["stages"]["train"]["outs"]
    run = RUN_LAYOUT.format(loss="${item.loss}", seed="${item.seed}")
    assert f"work/runs/${{item.dataset}}/{run}" in outs
    assert f"-p out_dir work/runs/${{item.dataset}}/{run}" in DVC["stages"]["train"]["cmd"]


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
                concrete = concrete.replace("${item.loss}", "triplet").replace("${item.ablation}", "daal_parts")
                assert has(concrete), f"stage {name}: params key {concrete} missing from params.yaml"
