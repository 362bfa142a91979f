"""docs/reliability.md names real tests: every ``tests/…py::test_name`` it cites exists."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_every_cited_test_exists():
    doc = (REPO / "docs" / "reliability.md").read_text()
    cited = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", doc)
    assert len(cited) > 20
    missing = [
        f"{path}::{name}"
        for path, name in cited
        if not (REPO / path).is_file()
        or not re.search(rf"^\s*def {name}\(", (REPO / path).read_text(), re.M)
    ]
    assert not missing, f"docs/reliability.md cites tests that do not exist: {missing}"
