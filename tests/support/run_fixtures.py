"""Shared fixtures (imported by tests/conftest.py): synthetic run folders shaped like the trainer's
(``metrics.json`` with test metrics computed by ``dmlstudy.evaluation.evaluate`` from the saved
embeddings, a plateau-rule history, settings), and the tiny study's serial ``dvc repro`` shared by
every test of the session that reads it (kernels are slow): test_study_repro.py checks it, the
fan-out test compares with it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from dmlstudy.evaluation import evaluate
from dmlstudy.training.rundir import run_path
from dmlstudy.training.settings import TrainSettings
from tests.support.tiny_repo import dvc, env, make_repo

#: val MAP@R per epoch and the plateau rule's decisions (patience 2, one drop): best epoch 3.
HISTORY = [(0.10, "improve"), (0.20, "improve"), (0.20, "wait"), (0.19, "drop"), (0.25, "improve")]
HISTORY += [(0.24, "wait"), (0.23, "stop")]


def write_run(
    root: Path,
    name: str,
    seed: int,
    noise: float,
    *,
    n_classes: int = 40,
    loss: str = "triplet",
    converged: bool = True,
    loss_params: dict | None = None,
    coarse_every: int = 4,
    **train: object,
) -> Path:
    """A run folder ``root/<name>/seed<seed>``: 4 images per class on the axes of an
    ``n_classes``-d space plus Gaussian ``noise`` (seeded), cosine metric."""
    d = run_path(root, name, seed)
    d.mkdir(parents=True)
    rng = np.random.default_rng([seed, 11])
    labels = np.repeat(np.arange(n_classes), 4)
    emb = (
        3 * np.eye(n_classes)[labels] + noise * rng.normal(size=(len(labels), n_classes))
    ).astype(np.float32)
    np.savez(
        d / "embeddings_test.npz",
        embeddings=emb,
        labels=labels,
        coarse_labels=labels // coarse_every,
        is_query=np.ones(len(labels), bool),
        is_gallery=np.ones(len(labels), bool),
        rows=np.arange(len(labels)),
    )
    history = HISTORY if converged else HISTORY[:5]
    settings = TrainSettings(
        prepared_dir="work/prepared/x",
        out_dir=str(d),
        loss=loss,
        loss_params=loss_params or {},
        seed=seed,
        **train,
    ).model_dump(mode="json")
    metrics = {
        "test": {k: float(v) for k, v in evaluate(emb, labels, metric="cosine", seed=seed).items()},
        "val": {"map@r": 0.25, "recall@1": 0.5},
        "best_epoch": 4,
        "epochs_run": len(history),
        "epochs": 40 if converged else 5,
        "converged": converged,
        "train_seconds": 2.0,
        "train_images_per_s": 9.0,
        "metric": "cosine",
        "settings": settings,
        "history": [
            {
                "epoch": e,
                "loss": 1.0 / (e + 1),
                "images_per_s": 5.0,
                "val": {"map@r": v, "recall@1": 2 * v},
                "decision": decision,
            }
            for e, (v, decision) in enumerate(history)
        ],
    }
    (d / "metrics.json").write_text(json.dumps(metrics))
    return d


@pytest.fixture
def make_run() -> Callable[..., Path]:
    return write_run


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory, shared_omniglot_dir):
    """``(repo, env, dvc repro's CompletedProcess)`` of the tiny study run serially."""
    tmp = tmp_path_factory.mktemp("study")
    run_env = env(tmp, shared_omniglot_dir.parent)
    repo = make_repo(tmp, run_env)
    return repo, run_env, dvc(repo, run_env, "repro")
