"""Static checks of the install files: conda is not available here, so environment.yml is read, not
run."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]


def _pyproject() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def test_environment_yml_installs_this_project_with_its_extras() -> None:
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    assert env["name"] == "dmlstudy"
    deps = env["dependencies"]
    pythons = [d for d in deps if isinstance(d, str) and d.startswith("python")]
    assert pythons, "environment.yml must pin python"
    version = pythons[0].split("=", 1)[1]
    major, minor = (int(x) for x in version.split(".")[:2])
    spec = _pyproject()["project"]["requires-python"]  # ">=3.10,<3.13"
    low, high = re.findall(r"3\.(\d+)", spec)
    assert major == 3 and int(low) <= minor < int(high), f"python {version} outside {spec}"
    assert "pip" in deps
    pip_entries = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    project = [e for e in pip_entries if re.fullmatch(r'-e\s+"?\.(\[[a-z,]+\])?"?', e)]
    assert project, f"environment.yml must pip-install this project, got {pip_entries}"
    extras = re.search(r"\[([a-z,]+)\]", project[0]).group(1).split(",")
    assert set(extras) <= set(_pyproject()["project"]["optional-dependencies"])


def test_torch_and_torchvision_are_pinned_together() -> None:
    deps = _pyproject()["project"]["dependencies"]
    assert any(re.fullmatch(r"torch==[\d.]+", d) for d in deps)
    assert any(re.fullmatch(r"torchvision==[\d.]+", d) for d in deps)


def test_every_runtime_dependency_has_an_upper_bound() -> None:
    for dep in _pyproject()["project"]["dependencies"]:
        assert "==" in dep or "<" in dep, f"unbounded dependency: {dep}"


def test_ci_runs_the_readme_test_command() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make study" in readme
    assert re.search(r"^make test$", ci, re.M), ".ci/run must run the README's test command"
