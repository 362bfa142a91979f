"""The one `dmlstudy` command (dmlstudy/cli.py) and the `python -m` entry points it gathers."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest

from dmlstudy import cli

REPO = Path(__file__).resolve().parents[1]


def test_every_entry_point_of_the_package_is_a_command():
    """A module runnable as `python -m` (a main(argv) and a __main__ guard) is a sub-command, and
    every sub-command's main takes argv."""
    runnable = set()
    for path in (REPO / "dmlstudy").rglob("*.py"):
        text = path.read_text()
        if re.search(r"^def main\(argv", text, re.M) and "__main__" in text:
            module = ".".join(path.relative_to(REPO).with_suffix("").parts)
            runnable.add(module)
    modules = [module for module, _ in cli.COMMANDS.values()]
    assert runnable - {"dmlstudy.cli"} == set(modules)
    for module in modules:
        main = importlib.import_module(module).main
        assert list(inspect.signature(main).parameters)[:1] == ["argv"], module


def test_the_console_script_is_declared():
    text = (REPO / "pyproject.toml").read_text()
    section = text.split("[project.scripts]\n", 1)[1].split("\n[", 1)[0]
    assert re.findall(r'^(\w+) = "(.+)"$', section, re.M) == [("dmlstudy", "dmlstudy.cli:main")]


def test_usage_lists_every_command_and_a_misspelt_one_gets_a_suggestion(capsys):
    assert cli.main([]) == 2
    out = capsys.readouterr().out
    assert all(f"  {name} " in out for name in cli.COMMANDS)
    assert cli.main(["campain"]) == 2
    assert "did you mean 'campaign'?" in capsys.readouterr().err


def test_a_command_runs_its_modules_main(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["paper", "--help"])
    assert exit_.value.code == 0
    assert "python -m dmlstudy.execution.paper_study" in capsys.readouterr().out
