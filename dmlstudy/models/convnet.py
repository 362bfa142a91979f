"""A small from-scratch ConvNet for Omniglot: ``convnet4`` and its half-width ``convnet4_050``.

The 4-block network of Vinyals et al., "Matching Networks for One Shot Learning" (NeurIPS 2016)
and Snell et al., "Prototypical Networks" (NeurIPS 2017): four blocks of conv3×3 (64 channels) →
BatchNorm → ReLU → 2×2 max-pool; a 28×28 input gives a 64×1×1 map. ``convnet4_050`` has 32 channels
(timm's ``_050`` width naming). Both take timm's keyword arguments (``in_chans``, ``num_classes``,
``global_pool``) and are registered with timm when timm is imported through
:func:`register_with_timm`, so ``timm.create_model("convnet4")`` works; the embedder builds them
directly, which spares a run the ~2 s import of timm (and torchvision) on every stage.

>>> import torch
>>> net = LOCAL_BACKBONES["convnet4"](in_chans=1, num_classes=0, global_pool="")
>>> tuple(net(torch.zeros(2, 1, 28, 28)).shape)
(2, 64, 1, 1)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class ConvNet4(nn.Module):
    """Four conv3×3-BN-ReLU-maxpool blocks; timm-style ``forward_features`` / ``forward_head``."""

    def __init__(
        self,
        in_chans: int = 1,
        num_classes: int = 0,
        global_pool: str = "avg",
        channels: int = 64,
        depth: int = 4,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        unknown = set(kwargs) - {
            "pretrained_cfg",
            "pretrained_cfg_overlay",
            "cache_dir",
            "drop_rate",
        }
        if unknown:
            raise TypeError(f"convnet4 got unknown argument(s) {sorted(unknown)}")
        if global_pool not in ("", "avg", "max"):
            raise ValueError(
                f"convnet4 global_pool must be '', 'avg' or 'max', got {global_pool!r}"
            )
        blocks: list[nn.Module] = []
        for i in range(depth):
            blocks += [
                nn.Conv2d(in_chans if i == 0 else channels, channels, 3, padding=1, bias=False),
                nn.BatchNorm2d(channels),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
        self.features = nn.Sequential(*blocks)
        self.num_features = channels
        self.global_pool = global_pool
        self.num_classes = num_classes
        self.fc = nn.Linear(channels, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        if self.global_pool == "avg":
            x = x.mean(dim=(2, 3))
        elif self.global_pool == "max":
            x = x.amax(dim=(2, 3))
        return self.fc(x) if self.num_classes > 0 else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def convnet4(pretrained: bool = False, **kwargs: Any) -> ConvNet4:
    """Omniglot ConvNet (4 blocks × 64 channels), from scratch only."""
    if pretrained:
        raise ValueError("convnet4 has no pretrained weights; set pretrained: false")
    return ConvNet4(**kwargs)


def convnet4_050(pretrained: bool = False, **kwargs: Any) -> ConvNet4:
    """The same ConvNet at half width (4 blocks × 32 channels; timm's ``_050`` width naming):
    about 3× the training throughput of ``convnet4`` on a 2-core CPU
    (benchmarks/bench_training.py)."""
    if pretrained:
        raise ValueError("convnet4_050 has no pretrained weights; set pretrained: false")
    return ConvNet4(**{"channels": 32, **kwargs})


#: Backbones of this package, built without timm (``Embedder`` looks here first).
LOCAL_BACKBONES = {"convnet4": convnet4, "convnet4_050": convnet4_050}


def register_with_timm() -> None:
    """Register :data:`LOCAL_BACKBONES` with timm's model registry (idempotent)."""
    import timm
    from timm.models import register_model

    for name, fn in LOCAL_BACKBONES.items():
        if not timm.is_model(name):
            register_model(fn)
