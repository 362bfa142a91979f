"""One training epoch: batches from the uint8 cache (gather → copy → device augmentation, made
ahead in a thread on CUDA: :mod:`.datapath`) → loss → step. Losses and pre-normalisation embedding
norms stay on the device, checked (:mod:`.divergence`) every ``divergence_check_every`` steps and
at the end (one host sync per check, before the step completing a window applies); labels are
checked on the host once per epoch. Randomness: augmentation draws from CPU generators seeded
from (seed, epoch, step); the global generators that dropout / drop-path use (timm takes no
generator) are saved once per epoch, re-seeded from (seed, epoch, step[, rank]) before each
forward (a host-side seed set: no sync, no per-step ``fork_rng`` copy of the CUDA state) and
restored at its end. Under DDP (:mod:`.distributed`) each process makes its share of a batch.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm  # not tqdm.auto: in a notebook kernel without ipywidgets it warns

from dmlstudy.losses import DMLLoss
from dmlstudy.losses.interface import check_label_range, labels_checked_on_host
from dmlstudy.models import Embedder
from dmlstudy.training.augment import Preprocess, step_generator, train_transform
from dmlstudy.training.datapath import DeviceFeed, Prefetcher, default_depth
from dmlstudy.training.distributed import SINGLE, Ranks
from dmlstudy.training.divergence import DivergenceMonitor, TrainingDivergedError
from dmlstudy.training.inference import autocast
from dmlstudy.training.optim import all_params, clip_gradients
from dmlstudy.training.settings import TrainSettings


@dataclass
class EpochStats:
    loss: float
    steps: int
    images: int
    seconds: float

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else float("nan")


def step_seed(seed: int, epoch: int, step: int, rank: int = 0) -> int:
    """Seed of the global RNG during one step (dropout / drop-path inside timm models); DDP ranks
    other than 0 get their own, so their shares of a batch draw independent masks."""
    key = [seed, epoch, step, 1] + ([rank] if rank else [])
    return int(np.random.SeedSequence(key).generate_state(1)[0])


@contextlib.contextmanager
def step_rng(device: torch.device) -> Iterator[Callable[[int], None]]:
    """Inside, the global CPU generator (and the CUDA generator of ``device``) belong to the
    caller, who re-seeds them with the yielded function; their state is restored on exit."""
    cuda = device.type == "cuda"
    with torch.random.fork_rng(devices=[device] if cuda else []):
        gens = [torch.default_generator]
        if cuda:
            index = device.index if device.index is not None else torch.cuda.current_device()
            gens.append(torch.cuda.default_generators[index])

        def reseed(seed: int) -> None:
            for g in gens:
                g.manual_seed(seed)

        yield reseed


@contextlib.contextmanager
def embedding_norms(model: Embedder) -> Iterator[list[torch.Tensor]]:
    """Collect the mean norm of every forward's head output (before L2 normalisation), on the
    device, while inside."""
    norms: list[torch.Tensor] = []
    handle = model.head.register_forward_hook(
        lambda _m, _i, out: norms.append(out.detach().float().norm(dim=1).mean())
    )
    try:
        yield norms
    finally:
        handle.remove()


class LossStep(nn.Module):
    """The differentiable part of a step: embed (autocast) → the global batch's embeddings
    (``ranks.gather``; as-is in one process) → loss. One module holds the model and the loss, so
    one DistributedDataParallel averages the gradients of both."""

    def __init__(
        self,
        model: Embedder,
        loss_fn: DMLLoss,
        s: TrainSettings,
        device: torch.device,
        ranks: Ranks = SINGLE,
    ) -> None:
        super().__init__()
        self.model, self.loss_fn, self.ranks = model, loss_fn, ranks
        self.device, self.amp, self.cpu_amp = device, s.amp, s.cpu_amp

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with autocast(self.device, self.amp, self.cpu_amp):
            z = self.model(x)
        return self.loss_fn(self.ranks.gather(z.float()), y)


class _Pending:
    """Losses and norms of the steps not yet checked (device tensors)."""

    def __init__(self, monitor: DivergenceMonitor, epoch: int, ranks: Ranks) -> None:
        self.monitor, self.epoch, self.ranks = monitor, epoch, ranks
        self.losses: list[torch.Tensor] = []
        self.norms: list[torch.Tensor] = []
        self.first_step = 0

    def check(self, agree: bool = True) -> list[float]:
        """Bring the window to the host (one sync), check it, return its losses; ``agree``: the
        window all ranks check (one collective; not on a path only this rank may be taking)."""
        if not self.losses:
            return []
        both = torch.stack([torch.stack(self.losses).double(), torch.stack(self.norms).double()])
        losses, norms = (self.ranks.agree(both) if agree else both).cpu().tolist()
        self.monitor.check(epoch=self.epoch, first_step=self.first_step, losses=losses, norms=norms)
        self.first_step += len(losses)
        self.losses, self.norms = [], []
        return losses


def train_epoch(
    *,
    model: Embedder,
    loss_fn: DMLLoss,
    optimizer: torch.optim.Optimizer,
    images: np.ndarray,
    rows: np.ndarray,
    labels: np.ndarray,
    batches: list[np.ndarray],
    preprocess: Preprocess,
    settings: TrainSettings,
    epoch: int,
    device: torch.device,
    monitor: DivergenceMonitor,
    step: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    ranks: Ranks = SINGLE,
    prefetch: int | None = None,
) -> EpochStats:
    """Train over ``batches`` (global batches: positions into ``rows``/``labels``; this process
    makes its ``ranks`` share of each) with ``step`` (default :class:`LossStep`; under DDP its
    DistributedDataParallel), batches made ``prefetch`` ahead (0: in the step; None: the
    device's :func:`~.datapath.default_depth`);
    raises :class:`~dmlstudy.training.divergence.TrainingDivergedError` (NaN/inf or a
    blow-up)."""
    s = settings
    step = step or LossStep(model, loss_fn, s, device, ranks)
    num_classes = loss_fn.expected_inputs()[0]
    if num_classes is not None and len(labels):  # on the host, once: no per-step device sync
        owner = loss_fn.registry_name or type(loss_fn).__name__
        check_label_range(int(labels.min()), int(labels.max()), num_classes, owner)
    params = all_params(optimizer)
    pending = _Pending(monitor, epoch, ranks)
    feed = DeviceFeed(device)
    depth = default_depth(device) if prefetch is None else prefetch
    make = partial(_make_batch, feed, images, rows, labels, batches, preprocess, s, epoch, ranks)
    total, n_images = 0.0, 0
    start = time.perf_counter()
    bar = tqdm(
        total=len(batches),
        desc=f"epoch {epoch + 1}/{s.epochs}",
        disable=not (s.progress and ranks.main),
        leave=False,
    )
    with (
        embedding_norms(model) as norms,
        step_rng(device) as reseed,
        labels_checked_on_host(num_classes),
        Prefetcher(make, len(batches), depth=depth, context=feed.producing) as ahead,
    ):
        try:
            for i, batch in enumerate(ahead):
                x, y = feed.take(batch)
                reseed(step_seed(s.seed, epoch, i, ranks.rank))
                value = step(x, y)
                pending.losses.append(value.detach())
                pending.norms.append(norms.pop())
                if len(pending.losses) >= s.divergence_check_every:  # before this step applies
                    total = _add(total, pending.check(), bar)
                optimizer.zero_grad(set_to_none=True)
                value.backward()
                clip_gradients(model, params, s)
                optimizer.step()
                n_images += len(batches[i])
                bar.update()
            total = _add(total, pending.check(), bar)
        except TrainingDivergedError:
            raise
        except Exception:
            pending.check(agree=False)  # a NaN that made a later step fail is the error
            raise
        finally:
            bar.close()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return EpochStats(
        loss=total / max(len(batches), 1),
        steps=len(batches),
        images=n_images,
        seconds=time.perf_counter() - start,
    )


def _add(total: float, losses: list[float], bar: Any) -> float:
    for v in losses:  # in step order, in float64: the sum a per-step float() gave
        total += v
    if losses:
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
    return total


def _make_batch(
    feed: DeviceFeed,
    images: np.ndarray,
    rows: np.ndarray,
    labels: np.ndarray,
    batches: list[np.ndarray],
    preprocess: Preprocess,
    s: TrainSettings,
    epoch: int,
    ranks: Ranks,
    step: int,
) -> Any:
    """This process's augmented share of batch ``step`` and the whole batch's labels
    (augmentation seeded from (seed, epoch, step), drawn for the whole batch)."""
    pos = batches[step]
    share = ranks.share(len(pos))
    x = train_transform(
        feed.gather(images, rows[pos[share]]),
        preprocess,
        scale=s.crop_scale,
        ratio=s.crop_ratio,
        hflip=s.hflip,
        generator=step_generator(s.seed, epoch, step),
        shift=s.max_shift,
        part=None if ranks.world == 1 else (share.start, len(pos)),
    )
    if s.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return feed.publish(x, feed.labels(labels[pos]))
