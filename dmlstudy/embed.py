"""User-facing retrieval API: ``load(checkpoint)`` → object with ``embed_paths`` / ``embed_arrays``.

Images go through exactly the preprocessing the model was trained with, read from the
checkpoint: the cache's decode/resize policy (:func:`dmlstudy.data.cache.decode_image` at the
cache's image size) and then the test-time resize / center crop / normalization of
:func:`dmlstudy.training.augment.eval_transform`.  The trainer's validation and final embeddings use
the same :func:`dmlstudy.training.inference.embed_images`.

Usage::

    model = dmlstudy.embed.load("runs/omniglot/multi_similarity/best.pt")
    vectors = model.embed_paths(["a.png", "b.png"])        # (2, d) float32
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from dmlstudy.data.cache import decode_image
from dmlstudy.models import Embedder, build_embedder
from dmlstudy.training.augment import Preprocess
from dmlstudy.training.checkpoint import load_checkpoint
from dmlstudy.training.inference import embed_images, resolve_device


class RetrievalModel:
    """A trained embedder plus its preprocessing; ``metric`` says how to compare its vectors."""

    def __init__(
        self,
        model: Embedder,
        preprocess: Preprocess,
        cache_image_size: int,
        metric: str,
        device: torch.device,
        batch_size: int = 256,
        info: dict[str, Any] | None = None,
        channels_last: bool = False,
        amp: bool = True,
        cpu_amp: bool = False,
    ) -> None:
        self.model = model.eval()
        self.preprocess = preprocess
        self.cache_image_size = cache_image_size
        self.metric = metric
        self.device = device
        self.batch_size = batch_size
        self.channels = int(model.config["in_chans"])
        self.info = info or {}
        self.channels_last = channels_last
        # bf16 autocast exactly where the trainer embedded with it (settings.amp / cpu_amp)
        self.amp, self.cpu_amp = amp, cpu_amp

    @property
    def embedding_dim(self) -> int:
        return int(self.model.config["embedding_dim"])

    def embed_arrays(self, images: np.ndarray) -> np.ndarray:
        """Embed uint8 N×H×W×C images (N×H×W accepted for grayscale) → float32 N×d; images not at
        the cache's size are first resized/cropped with the cache's policy, like ``embed_paths``."""
        images = np.asarray(images)
        if images.ndim == 3 and self.channels == 1:
            images = images[..., None]
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != self.channels:
            raise ValueError(
                f"expected uint8 N×H×W×{self.channels} images, got {images.dtype} {images.shape}"
            )
        size = self.cache_image_size
        if images.shape[1:3] != (size, size):  # not cache-sized: resize exactly as the cache did
            images = np.stack([self._to_cache_size(img) for img in images])
        return embed_images(
            self.model,
            images,
            self.preprocess,
            device=self.device,
            batch_size=self.batch_size,
            channels_last=self.channels_last,
            amp=self.amp,
            cpu_amp=self.cpu_amp,
        )

    def _to_cache_size(self, image: np.ndarray) -> np.ndarray:
        """One H×W×C array through the cache's decode/resize policy (lossless PNG round trip)."""
        buf = io.BytesIO()
        Image.fromarray(image[..., 0] if self.channels == 1 else image).save(buf, "PNG")
        return decode_image(buf.getvalue(), self.channels, self.cache_image_size)

    def decode(self, paths: Sequence[str | Path]) -> np.ndarray:
        """Decode image files with the cache's resize policy → uint8 N×S×S×C."""
        arrays = [
            decode_image(Path(p).read_bytes(), self.channels, self.cache_image_size) for p in paths
        ]
        return (
            np.stack(arrays)
            if arrays
            else np.zeros(
                (0, self.cache_image_size, self.cache_image_size, self.channels), np.uint8
            )
        )

    def embed_paths(self, paths: Sequence[str | Path]) -> np.ndarray:
        """Embed image files (PIL decode → cache resize policy → test-time preprocessing)."""
        return self.embed_arrays(self.decode(paths))


def load(checkpoint: str | Path, device: str = "cpu") -> RetrievalModel:
    """Load ``best.pt`` or ``checkpoint.pt`` written by :func:`dmlstudy.training.train`."""
    dev = resolve_device(device)
    ckpt = load_checkpoint(checkpoint, map_location=dev)
    missing = [
        k
        for k in ("model_config", "model_state", "preprocess", "cache_image_size")
        if k not in ckpt
    ]
    if missing:
        raise ValueError(f"{checkpoint} is not a dmlstudy training checkpoint (missing {missing})")
    config = {**ckpt["model_config"], "pretrained": False}  # weights come from the checkpoint
    model = build_embedder(**config)
    model.load_state_dict(ckpt["model_state"])
    model.to(dev)
    settings = ckpt.get("settings", {})
    channels_last = bool(settings.get("channels_last", False))
    # same autocast as the trainer's validation/test embeddings
    amp, cpu_amp = bool(settings.get("amp", True)), bool(settings.get("cpu_amp", False))
    if channels_last:  # same memory format as in training → same numerics
        model.to(memory_format=torch.channels_last)
    info = {k: ckpt.get(k) for k in ("loss_name", "epoch", "val", "class_names")}
    return RetrievalModel(
        model,
        Preprocess.from_dict(ckpt["preprocess"]),
        int(ckpt["cache_image_size"]),
        str(ckpt["metric"]),
        dev,
        info=info,
        channels_last=channels_last,
        amp=amp,
        cpu_amp=cpu_amp,
    )
