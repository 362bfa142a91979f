"""Embedding many images in batches with the exact test-time preprocessing of a model.

Used by the trainer (validation, final embeddings) and by :mod:`dmlstudy.embed`, so evaluation and
the user-facing API share one code path.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from dmlstudy.training.augment import Preprocess, eval_transform


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
) -> np.ndarray:
    """Embeddings (float32, N×d) of uint8 N×H×W×C ``images`` (or of ``images[rows]``), in eval
    mode."""
    device = torch.device(device)
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ValueError(f"expected uint8 N×H×W×C images, got {images.dtype} {images.shape}")
    rows = np.arange(len(images)) if rows is None else np.asarray(rows)
    was_training = model.training
    model.eval()
    out = []
    try:
        for start in range(0, len(rows), batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(images[rows[start : start + batch_size]]))
            x = eval_transform(batch.to(device, non_blocking=True), preprocess)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(device, amp, cpu_amp):
                z = model(x)
            out.append(z.float().cpu().numpy())
    finally:
        model.train(was_training)
    dim = model.head.out_features if not out else out[0].shape[1]
    return np.concatenate(out) if out else np.zeros((0, dim), np.float32)


def autocast(device: torch.device, amp: bool, cpu_amp: bool) -> torch.autocast:
    """bf16 autocast on CUDA when ``amp``, on the CPU when ``cpu_amp`` (TrainSettings)."""
    enabled = amp if device.type == "cuda" else cpu_amp and device.type == "cpu"
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)
