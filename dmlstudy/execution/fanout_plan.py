"""Which training runs a DVC stage will start, with the exact ``TrainSettings`` it will build.

A stage's command (``python -m dmlstudy.execution.run_notebook notebooks/train.py ... -p KEY
VALUE``, as DVC resolves it from dvc.yaml) is read with run_notebook's own parser; the notebook's
``parameters`` cell gives the defaults papermill would keep; the notebook's planner then builds
the settings with the same function the notebook calls (``runs.train_settings``,
``ablation.plan``, ``multimodal.plan``). The settings must be identical: a run folder is reused
by its stage only when its stored settings match (dmlstudy.training.rundir).

>>> notebook_call("python -m dmlstudy.execution.run_notebook nb/train.py out.ipynb -p seed 3")
('nb/train.py', {'seed': 3})
>>> notebook_call("python -m dmlstudy.study.check_params params.yaml") is None
True
"""

from __future__ import annotations

import ast
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dmlstudy.config import StudyConfig, load_config
from dmlstudy.execution.run_notebook import argument_parser, parse_parameters
from dmlstudy.study import ablation, multimodal
from dmlstudy.study.runs import train_settings
from dmlstudy.training.settings import TrainSettings

RUNNER = "dmlstudy.execution.run_notebook"
Planner = Callable[[StudyConfig, dict[str, Any]], list[TrainSettings]]


def _train(config: StudyConfig, p: dict[str, Any]) -> list[TrainSettings]:  # notebooks/train.py
    return [
        train_settings(
            config,
            p["dataset"],
            p["loss"],
            p["seed"],
            prepared_dir=p["prepared_dir"],
            out_dir=p["out_dir"],
        )
    ]


def _ablation(config: StudyConfig, p: dict[str, Any]) -> list[TrainSettings]:
    todo = ablation.plan(
        config, p["dataset"], p["ablation"], prepared_dir=p["prepared_dir"], runs_dir=p["runs_dir"]
    )
    return list(todo["settings"])


def _multimodal(config: StudyConfig, p: dict[str, Any]) -> list[TrainSettings]:
    todo = multimodal.plan(
        config, p["dataset"], prepared_dir=p["prepared_dir"], runs_dir=p["runs_dir"]
    )
    return list(todo["settings"])


#: The notebooks that train, and how each builds its runs' settings (as the notebook does).
PLANNERS: dict[str, Planner] = {
    "notebooks/train.py": _train,
    "notebooks/ablation.py": _ablation,
    "notebooks/multimodal.py": _multimodal,
}


@dataclass(frozen=True)
class StageRuns:
    """The runs one DVC stage trains: ``settings`` paths are relative to ``wdir`` (the stage's
    working directory), exactly as the stage builds them."""

    stage: str
    wdir: Path
    settings: tuple[TrainSettings, ...]


def notebook_call(cmd: str) -> tuple[str, dict[str, Any]] | None:
    """``(notebook source, -p parameters)`` of a run_notebook command, else None."""
    argv = shlex.split(cmd)
    for i in range(len(argv) - 1):
        if argv[i] == "-m" and argv[i + 1] == RUNNER:
            args = argument_parser().parse_args(argv[i + 2 :])
            return args.source, parse_parameters(args.parameter)
    return None


def notebook_defaults(source: str | Path) -> dict[str, Any]:
    """The literal assignments of the notebook's ``parameters`` cell (papermill keeps those not
    passed with ``-p``)."""
    import jupytext

    nb = jupytext.read(Path(source))
    for cell in nb.cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            tree = ast.parse(cell.source)
            return {
                t.id: ast.literal_eval(node.value)
                for node in tree.body
                if isinstance(node, ast.Assign)
                for t in node.targets
                if isinstance(t, ast.Name)
            }
    raise ValueError(f"{source} has no cell tagged 'parameters'")


def stage_runs(stage: str, cmd: str, wdir: str | Path) -> StageRuns | None:
    """The runs of one stage, or None if its command runs no training notebook."""
    call = notebook_call(cmd)
    if call is None or Path(call[0]).as_posix() not in PLANNERS:
        return None
    source, passed = call
    wdir = Path(wdir)
    params = {**notebook_defaults(wdir / source), **passed}
    config = load_config(wdir / params["params_file"])
    settings = PLANNERS[Path(source).as_posix()](config, params)
    return StageRuns(stage, wdir, tuple(settings))
