"""Embedding many images in batches with the exact test-time preprocessing of a model.

Used by the trainer (validation, final embeddings) and by :mod:`dmlstudy.embed`, so evaluation and
the user-facing API share one code path. On CUDA the next batches are gathered, copied and
preprocessed in a background thread while the model embeds the current one (:mod:`.datapath`);
embeddings stay on the device until the end (one copy to the host, not one sync per batch).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from dmlstudy.training.augment import Preprocess, eval_transform
from dmlstudy.training.datapath import DeviceFeed, Prefetcher, default_depth
from dmlstudy.training.settings import TrainSettings


def resolve_device(device: str) -> torch.device:
    """ "auto" → CUDA when available, else CPU; "cuda" without a GPU raises."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            "device: cuda was requested but torch.cuda.is_available() is False; use cpu or auto"
        )
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {device!r}")
    return torch.device(device)


@torch.inference_mode()
def embed_images(
    model: nn.Module,
    images: np.ndarray,
    preprocess: Preprocess,
    *,
    rows: np.ndarray | None = None,
    device: torch.device | str = "cpu",
    batch_size: int = 256,
    amp: bool = True,
    channels_last: bool = False,
    cpu_amp: bool = False,
    prefetch: int | None = None,
) -> np.ndarray:
    """Embeddings (float32, N×d) of uint8 N×H×W×C ``images`` (or of ``images[rows]``), in eval
    mode; batches made ``prefetch`` ahead (None: :func:`~.datapath.default_depth`)."""
    device = torch.device(device)
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ValueError(f"expected uint8 N×H×W×C images, got {images.dtype} {images.shape}")
    rows = np.arange(len(images)) if rows is None else np.asarray(rows)
    feed = DeviceFeed(device)
    starts = range(0, len(rows), batch_size)

    def make(i: int) -> tuple:
        batch = feed.gather(images, rows[starts[i] : starts[i] + batch_size])
        x = eval_transform(batch, preprocess)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return feed.publish(x)

    was_training = model.training
    model.eval()
    out = []
    try:
        depth = default_depth(device) if prefetch is None else prefetch
        with Prefetcher(make, len(starts), depth=depth, context=feed.producing) as ahead:
            for batch in ahead:
                (x,) = feed.take(batch)
                with autocast(device, amp, cpu_amp):
                    out.append(model(x).float())
    finally:
        model.train(was_training)
    if not out:
        return np.zeros((0, model.head.out_features), np.float32)
    return torch.cat(out).cpu().numpy()


def embed_run_rows(
    model: nn.Module,
    images: np.ndarray,
    preprocess: Preprocess,
    rows: np.ndarray,
    s: TrainSettings,
    device: torch.device,
) -> np.ndarray:
    """:func:`embed_images` of ``images[rows]`` as a run embeds for validation and test: its
    evaluation batch size, autocast and memory format."""
    return embed_images(
        model,
        images,
        preprocess,
        rows=rows,
        device=device,
        batch_size=s.eval_batch_size,
        amp=s.amp,
        cpu_amp=s.cpu_amp,
        channels_last=s.channels_last,
    )


def autocast(device: torch.device, amp: bool, cpu_amp: bool) -> torch.autocast:
    """bf16 autocast on CUDA when ``amp``, on the CPU when ``cpu_amp`` (TrainSettings)."""
    enabled = amp if device.type == "cuda" else cpu_amp and device.type == "cpu"
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)
