"""One training epoch: m-per-class batches from the uint8 cache → device augmentation → loss →
step."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from dmlstudy.losses import DMLLoss
from dmlstudy.models import Embedder
from dmlstudy.training.augment import Preprocess, step_generator, train_transform
from dmlstudy.training.optim import all_params
from dmlstudy.training.settings import TrainSettings


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the checkpoint of the last good epoch is kept."""


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
) -> EpochStats:
    """Train over ``batches`` (positions into ``rows``/``labels``); raises NonFiniteLossError."""
    s = settings
    cuda = device.type == "cuda"
    params = all_params(optimizer)
    total, n_images = 0.0, 0
    start = time.perf_counter()
    bar = tqdm(batches, desc=f"epoch {epoch + 1}/{s.epochs}", disable=not s.progress, leave=False)
    for step, pos in enumerate(bar):
        batch = torch.from_numpy(np.ascontiguousarray(images[rows[pos]])).to(
            device, non_blocking=True
        )
        y = torch.from_numpy(labels[pos].astype(np.int64)).to(device, non_blocking=True)
        x = train_transform(
            batch,
            preprocess,
            scale=s.crop_scale,
            ratio=s.crop_ratio,
            hflip=s.hflip,
            generator=step_generator(s.seed, epoch, step),
        )
        if s.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        # Any global-RNG use inside the model (dropout) is seeded from (seed, epoch, step) and
        # restored.
        with torch.random.fork_rng(devices=[device] if cuda else []):
            torch.manual_seed(step_seed(s.seed, epoch, step))
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda and s.amp):
                z = model(x)
            value = loss_fn(z.float(), y)
        v = float(value.detach())
        if not math.isfinite(v):
            raise NonFiniteLossError(
                f"non-finite loss {v} at epoch {epoch} (0-based), step {step}, loss {s.loss!r}; "
                "the checkpoint of the last finished epoch is kept. Lower lr / check the loss "
                "parameters."
            )
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        if s.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_([p for p in params if p.grad is not None], s.grad_clip)
        optimizer.step()
        total += v
        n_images += len(pos)
        bar.set_postfix(loss=f"{v:.4f}")
    if cuda:
        torch.cuda.synchronize(device)
    return EpochStats(
        loss=total / max(len(batches), 1),
        steps=len(batches),
        images=n_images,
        seconds=time.perf_counter() - start,
    )
