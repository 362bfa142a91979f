"""Shared test fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """The offline data folder (``../shared/data`` next to the checkout, or
    $DMLSTUDY_SHARED_DATA)."""
    return Path(os.environ.get("DMLSTUDY_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_omniglot_dir() -> Path:
    """Folder holding the offline Omniglot archives; skips visibly when it is absent."""
    path = shared_data_dir() / "omniglot"
    if not (path / "images_background.zip").is_file():
        pytest.skip(f"offline Omniglot archives not found at {path} (set DMLSTUDY_SHARED_DATA)")
    return path


def pytest_configure(config: pytest.Config) -> None:
    """Tests use tiny tensors: one intra-op thread is faster than two and immune to a busy
    machine."""
    import torch

    torch.set_num_threads(1)
