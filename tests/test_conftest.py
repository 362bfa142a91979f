"""The suite's own scheduling (tests/conftest.py): the modules that read the session-scoped tiny
study are one unit under ``--dist loadfile``, so the study is built once per run."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import TINY_STUDY_MODULES, scheduling_unit

REPO = Path(__file__).resolve().parents[1]


def test_every_module_using_the_tiny_study_is_scheduled_with_the_others():
    """A new module that takes the ``tiny_study`` fixture and is missing from the list would build
    the study again on another worker (≈ 2 min): this names it."""
    users = sorted(
        p.relative_to(REPO).as_posix()
        for p in (REPO / "tests").rglob("test_*.py")
        if re.search(r"def \w+\([^)]*\btiny_study\b", p.read_text())
    )
    assert users == sorted(TINY_STUDY_MODULES)
    assert {scheduling_unit(f"{m}::test_x") for m in users} == {"tiny study"}
    assert scheduling_unit("tests/test_conftest.py::t") == "tests/test_conftest.py"
