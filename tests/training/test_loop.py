"""End-to-end training on a tiny synthetic dataset: outputs, model selection, exact resume,
determinism, NaN handling, warm-up, coarse labels."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from dmlstudy.losses import DMLLoss
from dmlstudy.losses import base as loss_base
from dmlstudy.models import build_embedder
from dmlstudy.training import NonFiniteLossError, TrainSettings, train
from dmlstudy.training.checkpoint import load_checkpoint
from dmlstudy.training.loop import seeded


class _NaNLoss(DMLLoss):
    """Mean squared norm, but NaN from epoch 1 step 1 on (the trainer's schedule() tells the
    epoch)."""

    def __init__(self) -> None:
        super().__init__()
        self.epoch, self.calls = 0, 0

    def schedule(self, epoch: int, num_epochs: int, lr_drops: int | None = None) -> None:
        self.epoch, self.calls = epoch, 0

    def compute(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        value = (embeddings**2).sum(1).mean()
        return value * float("nan") if (self.epoch, self.calls) == (1, 2) else value


@pytest.fixture(scope="module")
def runs(
    make_settings: Callable[..., TrainSettings], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for loss in ("multi_similarity", "proxy_anchor"):
        s = make_settings(root / loss, loss=loss)
        out[loss] = (s, train(s))
    return out


@pytest.mark.parametrize("loss", ["multi_similarity", "proxy_anchor"])
def test_outputs_and_best_epoch_selected_on_validation(runs: dict[str, Any], loss: str) -> None:
    s, metrics = runs[loss]
    names = {p.name for p in s.out_dir.iterdir()}
    assert {
        "checkpoint.pt",
        "best.pt",
        "embeddings_val.npz",
        "embeddings_test.npz",
        "metrics.json",
        "dvclive",
    } <= names
    assert json.loads((s.out_dir / "metrics.json").read_text()) == json.loads(json.dumps(metrics))
    maps = [h["val"]["map@r"] for h in metrics["history"]]
    assert len(maps) == 2 and metrics["best_epoch"] == int(np.argmax(maps))
    assert metrics["val"]["map@r"] == max(maps)
    assert set(metrics["test"]) >= {"recall@1", "map@r", "r_precision", "nmi"}
    test = np.load(s.out_dir / "embeddings_test.npz")
    assert test["embeddings"].shape == (24, 8) and test["embeddings"].dtype == np.float32
    assert sorted(set(test["labels"])) == [9, 10, 11]  # the dataset's own fine labels
    assert list(test["coarse_labels"][:8]) == [4] * 8
    assert metrics["settings"]["loss"] == loss and metrics["train_images_per_s"] > 0
    assert (s.out_dir / "dvclive" / "metrics.json").is_file()


def test_resume_after_interrupt_is_exact(
    runs: dict[str, Any], make_settings: Callable[..., TrainSettings], tmp_path: Path
) -> None:
    """Stop after epoch 0 (as if killed), rerun: same result as the uninterrupted run, bit for
    bit."""
    ref_s, ref = runs["proxy_anchor"]  # proxies + Adam state must be restored
    s = make_settings(tmp_path / "run", loss="proxy_anchor")
    assert train(s, _stop_after_epoch=0) == {"interrupted_after_epoch": 0}
    assert load_checkpoint(s.out_dir / "checkpoint.pt")["state"]["epoch"] == 0
    (s.out_dir / "checkpoint.pt.tmp").write_bytes(b"torn write from the killed process")
    resumed = train(s)
    for split in ("val", "test"):
        a, b = (
            np.load(ref_s.out_dir / f"embeddings_{split}.npz"),
            np.load(s.out_dir / f"embeddings_{split}.npz"),
        )
        np.testing.assert_array_equal(a["embeddings"], b["embeddings"])
    assert [h["loss"] for h in resumed["history"]] == [h["loss"] for h in ref["history"]]
    assert resumed["test"] == ref["test"] and resumed["best_epoch"] == ref["best_epoch"]
    ckpt_a = load_checkpoint(ref_s.out_dir / "checkpoint.pt")["loss_state"]
    ckpt_b = load_checkpoint(s.out_dir / "checkpoint.pt")["loss_state"]
    assert all(torch.equal(ckpt_a[k], ckpt_b[k]) for k in ckpt_a)


def test_same_seed_same_init_other_seed_differs() -> None:
    def init(seed: int) -> torch.Tensor:
        with seeded(seed):
            return (
                build_embedder("convnet4", embedding_dim=4, in_chans=1).head.weight.detach().clone()
            )

    state = torch.random.get_rng_state()
    assert torch.equal(init(0), init(0)) and not torch.equal(init(0), init(1))
    assert torch.equal(state, torch.random.get_rng_state())  # the caller's global RNG is untouched


@pytest.mark.parametrize("check_every", [1, 10])
def test_nan_loss_stops_with_epoch_step_and_what_is_on_disk(
    make_settings: Callable[..., TrainSettings],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    check_every: int,
) -> None:
    # Registered for this test only, so the registry other tests see lists just the study's losses.
    monkeypatch.setitem(loss_base._REGISTRY, "_test_nan_after_first_epoch", _NaNLoss)
    s = make_settings(
        tmp_path / "nan", loss="_test_nan_after_first_epoch", divergence_check_every=check_every
    )
    with pytest.raises(
        NonFiniteLossError, match=r"non-finite loss nan at epoch 1 \(0-based\), step 1"
    ) as err:
        train(s)
    assert "epoch 0's checkpoint is kept" in str(err.value) and "lower lr (now 0.001)" in str(
        err.value
    )
    assert load_checkpoint(s.out_dir / "checkpoint.pt")["state"]["epoch"] == 0  # last good epoch
    assert not (s.out_dir / "metrics.json").exists()


def test_nan_in_the_first_epoch_says_there_is_nothing_to_resume(
    make_settings: Callable[..., TrainSettings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(loss_base._REGISTRY, "_test_nan_after_first_epoch", _NaNLoss)
    monkeypatch.setattr(
        _NaNLoss, "schedule", lambda self, epoch, n, drops=None: setattr(self, "epoch", 1)
    )
    s = make_settings(tmp_path / "nan0", loss="_test_nan_after_first_epoch")
    with pytest.raises(NonFiniteLossError, match=r"epoch 0 .*no checkpoint yet: nothing to resume"):
        train(s)
    assert not (s.out_dir / "checkpoint.pt").exists()


def test_warmup_trains_only_head(
    make_settings: Callable[..., TrainSettings], tmp_path: Path
) -> None:
    s = make_settings(tmp_path / "warm", warmup_epochs=1, epochs=2, max_steps_per_epoch=1)
    train(s, _stop_after_epoch=0)
    trained = load_checkpoint(s.out_dir / "checkpoint.pt")["model_state"]
    with seeded(s.seed):
        init = build_embedder("convnet4", embedding_dim=8, in_chans=1).state_dict()
    backbone = [k for k in init if k.startswith("backbone.")]
    assert backbone and all(
        torch.equal(init[k], trained[k]) for k in backbone
    )  # incl. BN running stats
    assert not torch.equal(init["head.weight"], trained["head.weight"])


def test_coarse_training_keeps_fine_labels(
    make_settings: Callable[..., TrainSettings], tmp_path: Path
) -> None:
    s = make_settings(tmp_path / "coarse", label_level="coarse", epochs=1, max_steps_per_epoch=1)
    metrics = train(s)
    ckpt = load_checkpoint(s.out_dir / "best.pt")
    assert ckpt["class_names"] == [
        "group 0",
        "group 1",
        "group 2",
    ]  # 6 fine train classes → 3 coarse
    test = np.load(s.out_dir / "embeddings_test.npz")
    assert sorted(set(test["labels"])) == [9, 10, 11] and sorted(set(test["coarse_labels"])) == [
        4,
        5,
    ]
    assert "test_fine" in metrics and math.isfinite(metrics["test_fine"]["map@r"])


def test_same_settings_same_embeddings_bitwise(runs: dict[str, Any], tmp_path: Path) -> None:
    ref_s, ref = runs["multi_similarity"]
    again = train(ref_s.model_copy(update={"out_dir": tmp_path / "again"}))
    for split in ("val", "test"):
        np.testing.assert_array_equal(
            np.load(ref_s.out_dir / f"embeddings_{split}.npz")["embeddings"],
            np.load(tmp_path / "again" / f"embeddings_{split}.npz")["embeddings"],
        )
    assert again["test"] == ref["test"]
    other = train(ref_s.model_copy(update={"out_dir": tmp_path / "seed1", "seed": 1}))
    assert other["history"][0]["loss"] != ref["history"][0]["loss"]


def test_pretrained_run_uses_the_backbones_normalization(
    make_settings: Callable[..., TrainSettings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trainer (and so best.pt / dmlstudy.embed) uses the pretrained weights' own mean/std."""
    import dmlstudy.training.loop as loop

    def fake_pretrained(
        *args: Any, **kwargs: Any
    ) -> Any:  # no downloads: stand-in "pretrained" weights
        model = build_embedder(*args, **{**kwargs, "pretrained": False})
        model.backbone.pretrained_cfg = {"mean": (0.25,), "std": (0.125,)}
        return model

    monkeypatch.setattr(loop, "build_embedder", fake_pretrained)
    s = make_settings(tmp_path / "pre", pretrained=True, epochs=1, max_steps_per_epoch=1)
    train(s)
    assert load_checkpoint(s.out_dir / "best.pt")["preprocess"]["mean"] == [0.25]
    assert load_checkpoint(s.out_dir / "best.pt")["preprocess"]["std"] == [0.125]


@pytest.mark.parametrize(
    "bad,error",
    [
        ({"batch_size": 64, "m_per_class": 2}, "32 classes per batch but labels hold only 6"),
        ({"embedding_dim": 1000}, "embedding_dim 1000 exceeds the 32 features"),
        ({"loss_params": {"no_such_key": 1.0}}, "no_such_key"),
    ],
    ids=["classes-per-batch", "embedding-dim", "loss-key"],
)
def test_a_bad_setting_leaves_the_finished_run_intact(
    make_settings: Callable[..., TrainSettings], tmp_path: Path, bad: dict, error: str
) -> None:
    """The sampler, model and loss are built before the run folder is opened: settings that
    fail there no longer empty the previous (finished) run's folder first."""
    s = make_settings(tmp_path / "run", backbone="convnet4_050", embedding_dim=8)
    train(s)
    before = {p.name: p.read_bytes() for p in s.out_dir.iterdir() if p.is_file()}
    assert {"metrics.json", "best.pt", "checkpoint.pt"} <= set(before)
    with pytest.raises((ValueError, TypeError), match=error):
        train(s.model_copy(update=bad))
    assert {p.name: p.read_bytes() for p in s.out_dir.iterdir() if p.is_file()} == before
    assert train(s)["test"]  # still the finished run: reused as it is
