"""One training run over several processes (torchrun + DistributedDataParallel), equal to the
single-process run on the same global batches. Each rank makes a contiguous share of every global
batch (m-per-class batches lay classes out in blocks of m: a share divisible by m keeps them
whole), augmented with the parameters the whole batch draws; the embeddings are all-gathered in
rank order, this rank's share keeping its gradient (as pytorch-metric-learning's
``DistributedLossWrapper``), so every loss sees the global batch. One DDP holds model and loss:
proxies get averaged, identical gradients. BatchNorm: SyncBatchNorm on CUDA; torch has none for
the CPU, where each share is normalised by its own statistics (equal with ``freeze_bn``). Rank 0
alone writes; it validates and broadcasts the result.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from dmlstudy.training.checkpoint import load_checkpoint
from dmlstudy.training.rundir import RunStart, open_run
from dmlstudy.training.settings import TrainSettings

log = logging.getLogger(__name__)
R = TypeVar("R")


class _GatherGlobal(torch.autograd.Function):
    """All ranks' equal shares, concatenated in rank order; backward: this rank's share of the
    gradient × world size W, so DDP's average over ranks gives the global batch's gradient.

    PML's wrapper multiplies the loss by W instead; that also multiplies the gradient of the
    loss's own parameters (proxies, the same on every rank) by W. Scaling here leaves it exact."""

    @staticmethod
    def forward(ctx: Any, local: torch.Tensor, rank: int, world: int) -> torch.Tensor:
        parts = [torch.empty_like(local) for _ in range(world)]
        dist.all_gather(parts, local.contiguous())
        ctx.rank, ctx.world, ctx.n = rank, world, local.shape[0]
        return torch.cat(parts)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        share = grad[ctx.rank * ctx.n : (ctx.rank + 1) * ctx.n]
        return share * ctx.world, None, None


@dataclass(frozen=True)
class Ranks:
    """This process's place in the run: ``rank`` of ``world`` processes (0 of 1: no DDP)."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes files and validates."""
        return self.rank == 0

    def share(self, n: int) -> slice:
        """This rank's contiguous share of a global batch of ``n``.

        >>> Ranks(1, 2).share(8)
        slice(4, 8, None)
        """
        if n % self.world:
            raise ValueError(f"a batch of {n} cannot be split evenly over {self.world} processes")
        k = n // self.world
        return slice(self.rank * k, (self.rank + 1) * k)

    def gather(self, local: torch.Tensor) -> torch.Tensor:
        """The global batch's rows from every rank's share (differentiable in this share)."""
        return local if self.world == 1 else _GatherGlobal.apply(local, self.rank, self.world)

    def agree(self, window: torch.Tensor) -> torch.Tensor:
        """A 2×k window (losses, mean embedding norms) that every rank checks alike: rank 0's
        losses (the global batch's) and the norms averaged over ranks (the global batch's mean:
        equal shares). One collective per divergence check."""
        if self.world == 1:
            return window
        parts = [torch.empty_like(window) for _ in range(self.world)]
        dist.all_gather(parts, window.contiguous())
        every = torch.stack(parts)
        return torch.stack([every[0, 0], every[:, 1].mean(dim=0)])

    def on_main(self, fn: Callable[[], R]) -> R:
        """``fn()`` run on rank 0 only, its (picklable) result given to every rank."""
        if self.world == 1:
            return fn()
        box = [fn() if self.main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]  # type: ignore[return-value]


SINGLE = Ranks()


def current_ranks() -> Ranks:
    """The process group's ranks (torchrun started it), or :data:`SINGLE`."""
    if dist.is_available() and dist.is_initialized():
        return Ranks(dist.get_rank(), dist.get_world_size())
    return SINGLE


@contextlib.contextmanager
def process_group(device: torch.device) -> Iterator[Ranks]:
    """The process group of a torchrun launch (its RANK, WORLD_SIZE, LOCAL_RANK, MASTER_* env):
    NCCL on CUDA, each process on GPU LOCAL_RANK; gloo on the CPU. Without torchrun's env, one
    process (:data:`SINGLE`); a group that exists already is used and left as found."""
    if dist.is_initialized():
        yield current_ranks()
        return
    if "RANK" not in os.environ:
        yield SINGLE
        return
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    # rank 0 validates and finalizes while the others wait in a broadcast: a generous timeout
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=timedelta(hours=1))
    try:
        yield current_ranks()
    finally:
        dist.destroy_process_group()


def check_shardable(batch_size: int, sampler: str, m_per_class: int, world: int) -> None:
    """Each rank's share must be whole (and hold whole classes for m-per-class batches)."""
    if batch_size % world:
        raise ValueError(
            f"batch_size {batch_size} cannot be split over {world} processes: use a batch_size "
            f"divisible by the number of processes (--nproc-per-node)"
        )
    if sampler == "m_per_class" and (batch_size // world) % m_per_class:
        raise ValueError(
            f"each of the {world} processes gets {batch_size // world} images of a batch, not a "
            f"multiple of m_per_class {m_per_class}: classes would be split across processes; "
            f"use a batch_size divisible by {world * m_per_class}"
        )


def sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """BatchNorm → SyncBatchNorm on CUDA (same parameters and buffers, same state_dict keys);
    timm's converter where timm built the model (it keeps BatchNormAct2d's activation)."""
    if device.type != "cuda":
        bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
        if bn and not getattr(model, "freeze_bn", False):
            log.warning(
                "DDP on the CPU: BatchNorm normalises each process's share with its own "
                "statistics (torch's SyncBatchNorm needs an accelerator); freeze_bn makes the "
                "run equal a single-process one"
            )
        return model
    if "timm" in sys.modules:
        from timm.layers import convert_sync_batchnorm

        return convert_sync_batchnorm(model)
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


class DDPStep:
    """A step module (``LossStep``) under DistributedDataParallel (as-is in one process). DDP
    registers the parameters that require grad when it is built, so :meth:`refresh` (before each
    epoch) rebuilds it when that set changes: warm-up epochs freeze the backbone."""

    def __init__(self, module: nn.Module, device: torch.device, ranks: Ranks) -> None:
        self.module, self.device, self.ranks = module, device, ranks
        self._ddp: nn.Module | None = None
        self._trainable: tuple[bool, ...] = ()

    def refresh(self) -> None:
        trainable = tuple(p.requires_grad for p in self.module.parameters())
        if self.ranks.world > 1 and (self._ddp is None or trainable != self._trainable):
            self._ddp = None  # the old reducer and its autograd hooks go first
            self._ddp = nn.parallel.DistributedDataParallel(  # buffers: rank 0's each forward
                self.module, device_ids=[self.device] if self.device.type == "cuda" else None
            )
            self._trainable = trainable

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.ranks.world == 1:
            return self.module(x, y)
        if self._ddp is None:
            raise RuntimeError("DDPStep.refresh() must run before the first step")
        return self._ddp(x, y)


def check_in_sync(modules: list[nn.Module], ranks: Ranks) -> None:
    """Raise if any parameter differs between rank 0 and another rank (compared through float64
    sums and sums of squares per tensor; one small collective)."""
    if ranks.world == 1:
        return
    ps = [p.detach() for m in modules for p in m.parameters()]
    local = torch.stack([torch.stack([p.double().sum(), p.double().square().sum()]) for p in ps])
    parts = [torch.empty_like(local) for _ in range(ranks.world)]
    dist.all_gather(parts, local)
    for r, other in enumerate(parts[1:], start=1):
        differ = (other != parts[0]).any(dim=1).nonzero().flatten().tolist()
        if differ:
            raise RuntimeError(
                f"DDP ranks out of sync: {len(differ)} parameter tensor(s) differ between rank 0 "
                f"and rank {r} (first: #{differ[0]})"
            )


def open_run_ranked(
    s: TrainSettings, inputs: dict[str, str], device: torch.device, ranks: Ranks
) -> RunStart:
    """:func:`~.rundir.open_run` on rank 0 (it may remove files); the other ranks then take what
    it found: the finished metrics, or the checkpoint, read from disk."""
    if ranks.world == 1:
        return open_run(s, inputs, device)
    start = open_run(s, inputs, device) if ranks.main else None
    finished, resume = ranks.on_main(lambda: (start.finished, start.checkpoint is not None))
    if start is not None:
        return start
    if finished is not None:
        return RunStart(finished=finished)
    if resume:
        return RunStart(checkpoint=load_checkpoint(s.out_dir / "checkpoint.pt", device))
    return RunStart()
