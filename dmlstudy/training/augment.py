"""Batched, device-side image preprocessing: random resized crop + flip (train), resize + center
crop (test), normalization.  Same code on CPU and CUDA; no per-image PIL in the training loop.

Random parameters follow torchvision's ``RandomResizedCrop.get_params`` (Szegedy et al., "Going
Deeper with Convolutions", 2015: area fraction ~ U(scale), log aspect ~ U(log ratio), 10 attempts,
then a center-crop fallback), vectorized over the batch and drawn on the CPU from an explicit
``torch.Generator`` seeded from (seed, epoch, step) — so a resumed run and a CUDA run see the very
same crops.  The crops are applied with one ``affine_grid``/``grid_sample`` call (bilinear).

>>> import torch
>>> x = torch.randint(0, 256, (4, 28, 28, 1), dtype=torch.uint8)
>>> p = Preprocess(image_size=24, eval_resize=28, mean=(0.5,), std=(0.5,))
>>> tuple(eval_transform(x, p).shape)
(4, 1, 24, 24)
>>> g = step_generator(0, 1, 2)
>>> tuple(train_transform(x, p, scale=(0.5, 1.0), ratio=(0.75, 1.33), hflip=True,
...                       generator=g).shape)
(4, 1, 24, 24)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
GRAY_MEAN = (0.5,)
GRAY_STD = (0.5,)


@dataclass(frozen=True)
class Preprocess:
    """Test-time preprocessing a model was trained with (stored in every checkpoint)."""

    image_size: int
    eval_resize: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocess:
        return cls(int(d["image_size"]), int(d["eval_resize"]), tuple(d["mean"]), tuple(d["std"]))


def default_mean_std(channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """ImageNet statistics for RGB, 0.5/0.5 for grayscale."""
    if channels == 3:
        return IMAGENET_MEAN, IMAGENET_STD
    if channels == 1:
        return GRAY_MEAN, GRAY_STD
    raise ValueError(f"no default mean/std for {channels} channels; set mean and std explicitly")


def backbone_mean_std(
    backbone: Any, channels: int, pretrained: bool
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Default normalization of a run: a pretrained timm backbone's own statistics (its
    ``pretrained_cfg``: ImageNet for ResNets, 0.5 for many ViT / Inception weights), else
    :func:`default_mean_std`.  Feeding pretrained weights other statistics than they were trained
    with silently degrades them."""
    cfg = getattr(backbone, "pretrained_cfg", None) or {}
    mean, std = cfg.get("mean"), cfg.get("std")
    if pretrained and mean is not None and std is not None and len(mean) == len(std) == channels:
        return tuple(float(v) for v in mean), tuple(float(v) for v in std)
    return default_mean_std(channels)


def step_generator(seed: int, epoch: int, step: int) -> torch.Generator:
    """CPU generator seeded from (seed, epoch, step) via numpy's SeedSequence (well-mixed)."""
    state = np.random.SeedSequence([seed, epoch, step]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def to_float(images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """uint8 B×H×W×C → normalized float32 B×C×H×W (on the images' device)."""
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(f"expected uint8 B×H×W×C images, got {images.dtype} {tuple(images.shape)}")
    if images.shape[-1] != len(mean):
        raise ValueError(f"images have {images.shape[-1]} channels but mean/std have {len(mean)}")
    x = images.permute(0, 3, 1, 2).float().div_(255.0)
    m = torch.tensor(mean, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, device=x.device).view(1, -1, 1, 1)
    return (x - m) / s


def sample_crops(
    n: int,
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    generator: torch.Generator,
    attempts: int = 10,
) -> torch.Tensor:
    """n crop boxes (x0, y0, w, h) in pixels, torchvision's RandomResizedCrop policy, vectorized."""
    area = height * width
    target = area * torch.empty(n, attempts).uniform_(scale[0], scale[1], generator=generator)
    log_r = torch.empty(n, attempts).uniform_(
        math.log(ratio[0]), math.log(ratio[1]), generator=generator
    )
    aspect = torch.exp(log_r)
    w = torch.sqrt(target * aspect)
    h = torch.sqrt(target / aspect)
    ok = (w <= width) & (h <= height)
    first = torch.argmax(ok.int(), dim=1)  # first valid attempt (0 if none)
    idx = torch.arange(n)
    w, h, any_ok = w[idx, first], h[idx, first], ok.any(dim=1)
    # fallback: the largest center crop within the ratio range (torchvision)
    in_ratio = width / height
    if in_ratio < ratio[0]:
        fw, fh = float(width), width / ratio[0]
    elif in_ratio > ratio[1]:
        fw, fh = height * ratio[1], float(height)
    else:
        fw, fh = float(width), float(height)
    w = torch.where(any_ok, w, torch.full_like(w, fw))
    h = torch.where(any_ok, h, torch.full_like(h, fh))
    u = torch.rand(n, 2, generator=generator)
    x0 = torch.where(any_ok, u[:, 0] * (width - w), (width - w) / 2)
    y0 = torch.where(any_ok, u[:, 1] * (height - h), (height - h) / 2)
    return torch.stack([x0, y0, w, h], dim=1)


def crop_resize(
    x: torch.Tensor, boxes: torch.Tensor, size: int, flip: torch.Tensor | None = None
) -> torch.Tensor:
    """Bilinear crop of float B×C×H×W to B×C×size×size by pixel boxes (x0, y0, w, h); optional
    h-flip."""
    b, c, hgt, wid = x.shape
    boxes = boxes.to(device=x.device, dtype=torch.float32)
    x0, y0, w, h = boxes.unbind(1)
    theta = torch.zeros(b, 2, 3, device=x.device)
    sx = w / wid
    theta[:, 0, 0] = sx if flip is None else torch.where(flip.to(x.device), -sx, sx)
    theta[:, 0, 2] = -1 + 2 * (x0 + w / 2) / wid
    theta[:, 1, 1] = h / hgt
    theta[:, 1, 2] = -1 + 2 * (y0 + h / 2) / hgt
    grid = F.affine_grid(theta, [b, c, size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def train_transform(
    images: torch.Tensor,
    p: Preprocess,
    *,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    hflip: bool,
    generator: torch.Generator,
    shift: int = 0,
    part: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Training augmentation of a uint8 B×H×W×C batch (already on the training device): random
    resized crop, then a random translation of up to ``shift`` cache pixels per axis (border
    padding; the Omniglot recipe's ±2 px shifts), then an optional horizontal flip.

    ``part=(start, total)``: ``images`` are rows ``start:start + B`` of a batch of ``total``; the
    random parameters are drawn for the whole batch and this share's are applied, so a batch
    split across processes (DDP) is augmented exactly as in one process."""
    n, hgt, wid, _ = images.shape
    start, total = (0, n) if part is None else part
    if not 0 <= start <= start + n <= total:
        raise ValueError(f"part {part} does not hold a share of {n} images")
    boxes = sample_crops(total, hgt, wid, scale, ratio, generator)
    flip = torch.rand(total, generator=generator) < 0.5 if hflip else None
    if shift:  # drawn last, so runs without shifts keep their random stream
        offsets = torch.randint(-shift, shift + 1, (total, 2), generator=generator)
        boxes = torch.cat([boxes[:, :2] - offsets, boxes[:, 2:]], dim=1)
    if (start, total) != (0, n):
        boxes = boxes[start : start + n]
        flip = None if flip is None else flip[start : start + n]
    return crop_resize(to_float(images, p.mean, p.std), boxes, p.image_size, flip)


def eval_transform(images: torch.Tensor, p: Preprocess) -> torch.Tensor:
    """Test-time preprocessing: resize the shorter side to ``eval_resize`` (antialiased bilinear),
    center crop ``image_size``, normalize."""
    x = to_float(images, p.mean, p.std)
    hgt, wid = x.shape[-2:]
    if min(hgt, wid) != p.eval_resize:
        s = p.eval_resize / min(hgt, wid)
        new = (max(p.eval_resize, round(hgt * s)), max(p.eval_resize, round(wid * s)))
        x = F.interpolate(x, size=new, mode="bilinear", antialias=True, align_corners=False)
    hgt, wid = x.shape[-2:]
    if p.image_size > min(hgt, wid):
        raise ValueError(f"image_size {p.image_size} is larger than the resized image {hgt}×{wid}")
    # torchvision's center_crop offsets (Python round) so PIL-era pipelines match exactly
    top, left = round(float(hgt - p.image_size) / 2.0), round(float(wid - p.image_size) / 2.0)
    return x[..., top : top + p.image_size, left : left + p.image_size].contiguous()
