"""Fixtures for training tests: a tiny synthetic prepared dataset and a settings factory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dmlstudy.training import TrainSettings
from dmlstudy.training.synthetic import write_synthetic_prepared


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
