"""The data path: batches made ahead in a thread are bit-identical to the per-step path it
replaced (an oracle of the old loop: inline batch, ``fork_rng`` around every forward), with a
dropout layer drawing from the global RNG; errors surface at their item; labels are checked on
the host once, not on the device per step."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from dmlstudy.data import PreparedDataset, build_sampler
from dmlstudy.losses import build_loss
from dmlstudy.losses.interface import check_batch, labels_checked_on_host
from dmlstudy.models import build_embedder
from dmlstudy.training import TrainSettings, train
from dmlstudy.training.augment import Preprocess, step_generator, train_transform
from dmlstudy.training.datapath import Prefetcher
from dmlstudy.training.divergence import DivergenceMonitor
from dmlstudy.training.epoch import step_seed, train_epoch
from dmlstudy.training.inference import embed_images
from dmlstudy.training.optim import build_optimizer
from dmlstudy.training.outputs import train_labels

PRE = Preprocess(16, 16, (0.5,), (0.5,))


def _setup(s: TrainSettings, loss: str) -> tuple:
    torch.manual_seed(0)
    loss_fn = build_loss(loss, num_classes=6, embedding_dim=8)
    model = build_embedder("convnet4", embedding_dim=8, in_chans=1)
    model.norm = torch.nn.Dropout(0.3)  # draws from the global RNG, like timm's dropout
    model.to(memory_format=torch.channels_last).train()
    return model, loss_fn, build_optimizer(model, loss_fn, s)


def _old_epoch(model, loss_fn, opt, images, rows, labels, batches, s, epoch) -> list[float]:
    """The loop before the data path (dmlstudy.training.epoch at ac913f4), step by step."""
    out = []
    for step, pos in enumerate(batches):
        batch = torch.from_numpy(np.ascontiguousarray(images[rows[pos]]))
        y = torch.from_numpy(labels[pos].astype(np.int64))
        x = train_transform(
            batch, PRE, scale=s.crop_scale, ratio=s.crop_ratio, hflip=s.hflip,
            generator=step_generator(s.seed, epoch, step), shift=s.max_shift,
        )  # fmt: skip
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(step_seed(s.seed, epoch, step))
            value = loss_fn(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()
        out.append(float(value.detach()))
    return out


@pytest.mark.parametrize("loss", ["multi_similarity", "proxy_anchor"])
def test_epochs_are_bit_identical_to_the_per_step_path(
    make_settings: Callable[..., TrainSettings], tiny_prepared: Path, loss: str
) -> None:
    s = make_settings(Path("."), loss=loss, hflip=True, max_shift=1)
    ds = PreparedDataset.load(tiny_prepared)
    rows, labels, _ = train_labels(ds, "fine")
    sampler = build_sampler("m_per_class", labels, 8, 4, 0)
    runs = {}
    for name in ("old", "inline", "ahead"):
        model, loss_fn, opt = _setup(s, loss)
        monitor = DivergenceMonitor(loss)
        rng_before = torch.random.get_rng_state()
        history = []
        for epoch in range(2):
            batches = sampler.epoch_batches(epoch)[:3]
            if name == "old":
                history.append(sum(_old_epoch(model, loss_fn, opt, ds.images, rows, labels,
                                              batches, s, epoch)) / len(batches))  # fmt: skip
                continue
            stats = train_epoch(
                model=model, loss_fn=loss_fn, optimizer=opt, images=ds.images, rows=rows,
                labels=labels, batches=batches, preprocess=PRE, settings=s, epoch=epoch,
                device=torch.device("cpu"), monitor=monitor, prefetch=2 if name == "ahead" else 0,
            )  # fmt: skip
            history.append(stats.loss)
        assert torch.equal(torch.random.get_rng_state(), rng_before)  # the caller's RNG kept
        runs[name] = (
            history,
            [p.detach().clone() for p in [*model.parameters(), *loss_fn.parameters()]],
        )
    for name in ("inline", "ahead"):
        assert runs[name][0] == runs["old"][0]
        assert all(torch.equal(a, b) for a, b in zip(runs[name][1], runs["old"][1], strict=True))


def test_embeddings_made_ahead_equal_the_per_batch_path(tiny_prepared: Path) -> None:
    ds = PreparedDataset.load(tiny_prepared)
    torch.manual_seed(0)
    model = build_embedder("convnet4", embedding_dim=8, in_chans=1)
    rows = np.arange(5, 45)
    ahead = embed_images(model, ds.images, PRE, rows=rows, batch_size=7, prefetch=2)
    inline = embed_images(model, ds.images, PRE, rows=rows, batch_size=7, prefetch=0)
    from dmlstudy.training.augment import eval_transform

    with torch.inference_mode():
        model.eval()
        old = np.concatenate([
            model(eval_transform(torch.from_numpy(ds.images[rows[i : i + 7]]), PRE)).numpy()
            for i in range(0, len(rows), 7)
        ])  # fmt: skip
    assert ahead.dtype == np.float32 and ahead.shape == (40, 8)
    np.testing.assert_array_equal(ahead, old)
    np.testing.assert_array_equal(inline, old)
    assert embed_images(model, ds.images, PRE, rows=rows[:0]).shape == (0, 8)


def test_prefetcher_raises_at_the_failing_item_and_stops_its_thread() -> None:
    made: list[int] = []

    def make(i: int) -> int:
        if i == 3:
            raise KeyError("bad item 3")
        made.append(i)
        return i

    for depth in (0, 2):
        got = []
        with pytest.raises(KeyError, match="bad item 3"), Prefetcher(make, 6, depth=depth) as p:
            got.extend(p)
        assert got == [0, 1, 2]  # every item before the failing one
    before = threading.active_count()
    with Prefetcher(lambda i: i, 1000, depth=2) as p:
        assert next(p) == 0  # the consumer leaves early: the producer is stopped, not leaked
    assert threading.active_count() == before


def test_labels_are_checked_on_the_host_once_not_on_the_device_per_step(
    make_settings: Callable[..., TrainSettings], tiny_prepared: Path, tmp_path: Path
) -> None:
    meta = dict(device="meta")
    z, y = torch.zeros(2, 3, **meta), torch.zeros(2, dtype=torch.long, **meta)
    with pytest.raises((NotImplementedError, RuntimeError)):
        check_batch(z, y, num_classes=3)  # reads min/max: a device->host copy
    with labels_checked_on_host(3):
        check_batch(z, y, num_classes=3)  # trusted: no copy
    with labels_checked_on_host(4), pytest.raises((NotImplementedError, RuntimeError)):
        check_batch(z, y, num_classes=3)  # checked against another class count
    with labels_checked_on_host(3), pytest.raises(ValueError, match="got min 0, max 3"):
        check_batch(torch.zeros(2, 3), torch.tensor([0, 3]), num_classes=3)  # CPU: always

    s = make_settings(tmp_path, loss="proxy_anchor")
    ds = PreparedDataset.load(tiny_prepared)
    rows, labels, _ = train_labels(ds, "fine")
    model, loss_fn, opt = _setup(s, "proxy_anchor")
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match=r"contiguous class ids in 0\.\.5.*max 6"):
        train_epoch(
            model=model, loss_fn=loss_fn, optimizer=opt, images=ds.images, rows=rows,
            labels=labels + 1, batches=[np.arange(8)], preprocess=PRE, settings=s, epoch=0,
            device=torch.device("cpu"), monitor=DivergenceMonitor("proxy_anchor"),
        )  # fmt: skip
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_torch_compile_compiles_the_backbone_in_place(
    make_settings: Callable[..., TrainSettings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wiring (a real inductor compile takes ~40 s on a CPU; benchmarks/gpu_check.py
    --compile measures it on a GPU): the backbone is compiled, keys and outputs unchanged."""
    compiled = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, **kw: compiled.append(self))
    s = make_settings(tmp_path, torch_compile=True, epochs=1, max_steps_per_epoch=1)
    metrics = train(s)
    assert len(compiled) == 1 and type(compiled[0]).__name__ == "ConvNet4"
    assert metrics["settings"]["torch_compile"] is True
