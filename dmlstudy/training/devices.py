"""What this machine trains side by side: its visible GPUs, and how many runs of a given CPU
thread count its cores hold (the paper-grade study's stages, the budget check's runs, the
fan-out's local workers).
"""

from __future__ import annotations

import os
from collections.abc import Sequence


def visible_gpus() -> list[str]:
    """This machine's CUDA devices as ``CUDA_VISIBLE_DEVICES`` entries (the ones already
    restricted to, if that variable is set)."""
    import torch

    count = torch.cuda.device_count()
    listed = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d]
    return (
        listed[:count] if "CUDA_VISIBLE_DEVICES" in os.environ else [str(i) for i in range(count)]
    )


def fitting_workers(
    threads: int | None, gpus: Sequence[str] | None = None, cores: int | None = None
) -> int:
    """How many runs of ``threads`` CPU threads this machine trains side by side: one per GPU
    (``gpus``: the visible ones), else as many as the ``cores`` (this machine's) hold; ``threads``
    None is torch's default, every core: one run.

    >>> fitting_workers(1, gpus=[], cores=2), fitting_workers(2, gpus=[], cores=16)
    (2, 8)
    >>> fitting_workers(None, gpus=[], cores=16), fitting_workers(4, gpus=[], cores=2)
    (1, 1)
    >>> fitting_workers(1, gpus=["0", "3"], cores=16)
    2
    """
    gpus = visible_gpus() if gpus is None else gpus
    if gpus:
        return len(gpus)
    cores = (os.cpu_count() or 1) if cores is None else cores
    return max(1, cores // threads) if threads else 1
