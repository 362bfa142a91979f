"""One training epoch: m-per-class batches from the uint8 cache → device augmentation → loss →
step. The loss and the pre-normalisation embedding norm of each step stay on the device and are
checked (:mod:`.divergence`) every ``divergence_check_every`` steps and at the end: one host sync
per check, not per step, and always before the step that completes a window is applied."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm import tqdm  # not tqdm.auto: in a notebook kernel without ipywidgets it warns

from dmlstudy.losses import DMLLoss
from dmlstudy.models import Embedder
from dmlstudy.training.augment import Preprocess, step_generator, train_transform
from dmlstudy.training.divergence import DivergenceMonitor, TrainingDivergedError
from dmlstudy.training.inference import autocast
from dmlstudy.training.optim import all_params
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


def step_seed(seed: int, epoch: int, step: int) -> int:
    """Seed for the global RNG during one step (dropout / drop-path inside timm models)."""
    return int(np.random.SeedSequence([seed, epoch, step, 1]).generate_state(1)[0])


@contextmanager
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


class _Pending:
    """Losses and norms of the steps not yet checked (device tensors)."""

    def __init__(self, monitor: DivergenceMonitor, epoch: int) -> None:
        self.monitor, self.epoch = monitor, epoch
        self.losses: list[torch.Tensor] = []
        self.norms: list[torch.Tensor] = []
        self.first_step = 0

    def check(self) -> list[float]:
        """Bring the window to the host (one sync), check it, return its losses."""
        if not self.losses:
            return []
        both = torch.stack([torch.stack(self.losses).double(), torch.stack(self.norms).double()])
        losses, norms = both.cpu().tolist()
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
) -> EpochStats:
    """Train over ``batches`` (positions into ``rows``/``labels``); raises
    :class:`~dmlstudy.training.divergence.TrainingDivergedError` (NaN/inf or a blow-up)."""
    s = settings
    cuda = device.type == "cuda"
    params = all_params(optimizer)
    pending = _Pending(monitor, epoch)
    total, n_images = 0.0, 0
    start = time.perf_counter()
    bar = tqdm(batches, desc=f"epoch {epoch + 1}/{s.epochs}", disable=not s.progress, leave=False)
    with embedding_norms(model) as norms:
        try:
            for step, pos in enumerate(bar):
                x, y = _batch(images, rows, labels, pos, preprocess, s, epoch, step, device)
                value = _loss(model, loss_fn, x, y, s, epoch, step, device)
                pending.losses.append(value.detach())
                pending.norms.append(norms.pop())
                if len(pending.losses) >= s.divergence_check_every:  # before this step applies
                    total = _add(total, pending.check(), bar)
                optimizer.zero_grad(set_to_none=True)
                value.backward()
                if s.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(
                        [p for p in params if p.grad is not None], s.grad_clip
                    )
                optimizer.step()
                n_images += len(pos)
            total = _add(total, pending.check(), bar)
        except TrainingDivergedError:
            raise
        except Exception:
            pending.check()  # a NaN that made a later step fail is the error to report
            raise
    if cuda:
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


def _batch(
    images: np.ndarray,
    rows: np.ndarray,
    labels: np.ndarray,
    pos: np.ndarray,
    preprocess: Preprocess,
    s: TrainSettings,
    epoch: int,
    step: int,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Augmented images and labels of one batch (augmentation seeded from (seed, epoch, step))."""
    batch = torch.from_numpy(np.ascontiguousarray(images[rows[pos]])).to(device, non_blocking=True)
    y = torch.from_numpy(labels[pos].astype(np.int64)).to(device, non_blocking=True)
    x = train_transform(
        batch,
        preprocess,
        scale=s.crop_scale,
        ratio=s.crop_ratio,
        hflip=s.hflip,
        generator=step_generator(s.seed, epoch, step),
        shift=s.max_shift,
    )
    if s.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y


def _loss(
    model: Embedder,
    loss_fn: DMLLoss,
    x: torch.Tensor,
    y: torch.Tensor,
    s: TrainSettings,
    epoch: int,
    step: int,
    device: torch.device,
) -> torch.Tensor:
    cuda = device.type == "cuda"
    # Any global-RNG use inside the model (dropout) is seeded from (seed, epoch, step) and restored.
    with torch.random.fork_rng(devices=[device] if cuda else []):
        torch.manual_seed(step_seed(s.seed, epoch, step))
        with autocast(device, s.amp, s.cpu_amp):
            z = model(x)
        return loss_fn(z.float(), y)
