"""No committed file names a folder of one particular machine (a home, root's home, or the
workspace this project was developed in): every path comes from params.yaml, dvc.yaml, an
environment variable or the repository itself."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# built from parts so that this file does not match itself
MACHINE_PATH = re.compile(r"(?<![\w.~-])/(?:" + "|".join(["work", "root", "home"]) + r")/")


def _tracked() -> list[Path]:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout: the tracked files are unknown")
    out = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout
    return [REPO / p for p in out.decode().split("\0") if p]


def test_machine_path_pattern():
    assert MACHINE_PATH.search("default=" + "/" + "work/shared/data")
    assert MACHINE_PATH.search("see " + "/" + "home/me/x")
    assert not MACHINE_PATH.search("work/runs/omniglot and ~/.cache/dmlstudy and a/" + "work/b")


def test_no_tracked_file_names_a_machine_path():
    found = []
    for path in _tracked():
        if not path.is_file() or path.suffix in {".png", ".npz", ".npy", ".pt", ".zip"}:
            continue
        text = path.read_text(encoding="utf-8", errors="ignore")
        for number, line in enumerate(text.splitlines(), 1):
            if MACHINE_PATH.search(line):
                found.append(f"{path.relative_to(REPO)}:{number}: {line.strip()[:120]}")
    assert not found, "machine-specific paths:\n" + "\n".join(found)
