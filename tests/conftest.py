"""Shared test fixtures: the offline data, and a tiny synthetic prepared dataset with a
TrainSettings factory for training tests; synthetic run folders and the tiny study
(tests/support/run_fixtures.py)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dmlstudy.training import TrainSettings
from dmlstudy.training.synthetic import write_synthetic_prepared
from tests.support.run_fixtures import make_run, tiny_study  # noqa: F401  (fixtures for every test folder)

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


@pytest.fixture(scope="session")
def tiny_prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 train classes × 8, 3 val × 8, 3 test × 8 grayscale 16×16 images (coarse = pairs of
    classes)."""
    return write_synthetic_prepared(
        tmp_path_factory.mktemp("prepared"),
        classes={"train": 6, "val": 3, "test": 3},
        per_class=8,
        image_size=16,
        channels=1,
    )


@pytest.fixture(scope="session")
def make_settings(tiny_prepared: Path) -> Callable[..., TrainSettings]:
    def make(out_dir: Path, **overrides: Any) -> TrainSettings:
        base: dict[str, Any] = dict(
            prepared_dir=tiny_prepared,
            out_dir=out_dir,
            loss="multi_similarity",
            epochs=2,
            batch_size=8,
            m_per_class=4,
            image_size=16,
            embedding_dim=8,
            lr=1e-3,
            max_steps_per_epoch=2,
            progress=False,
            hflip=False,
            crop_scale=(0.5, 1.0),
            device="cpu",
            eval_batch_size=64,
            cpu_threads=1,
        )
        base.update(overrides)
        return TrainSettings(**base)

    return make


def pytest_configure(config: pytest.Config) -> None:
    """Tests use tiny tensors: one intra-op thread is faster than two and immune to a busy
    machine."""
    import torch

    torch.set_num_threads(1)


#: The test modules that read the session-scoped tiny study (``tiny_study``, a whole ``dvc repro``
#: of the tiny profile, ≈ 2 min). Under ``make test`` (``-n auto --dist loadfile``) they are one
#: scheduling unit, so one worker builds the study once instead of every worker that gets one of
#: them building its own (tests/test_conftest.py keeps this list equal to the modules using it).
TINY_STUDY_MODULES = (
    "tests/execution/test_paper_study.py",
    "tests/pipeline/test_fanout_study.py",
    "tests/pipeline/test_study_repro.py",
    "tests/study/test_edits.py",
)


def scheduling_unit(nodeid: str) -> str:
    """A test's scheduling unit under ``--dist loadfile``: its module, or "tiny study" for
    every module of :data:`TINY_STUDY_MODULES`.

    >>> scheduling_unit("tests/study/test_edits.py::test_x"), scheduling_unit("tests/a.py::t")
    ('tiny study', 'tests/a.py')
    """
    module = nodeid.split("::", 1)[0]
    return "tiny study" if module in TINY_STUDY_MODULES else module


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist's ``loadfile`` scheduling by :func:`scheduling_unit` (xdist's own ``xdist_group``
    marks would do this under ``--dist loadgroup``, but under pytest 9.2 they never reach its
    scheduler); any other ``--dist`` is left to xdist."""
    if config.getoption("dist", None) != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class TinyStudyOnce(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return scheduling_unit(nodeid)

    return TinyStudyOnce(config, log)
