"""Embedding network: timm backbone → pooling → (LayerNorm) → linear head → (L2 normalization).

Pooling "avgmax" is the *sum* of global average and global max pooling, as in the official
Proxy-Anchor code (Kim et al., CVPR 2020, ``net/resnet.py``) and the RSW head (GMP+GAP →
LayerNorm without affine → Linear).  ``freeze_bn`` keeps every BatchNorm layer of the backbone in
eval mode with frozen affine parameters (common practice for fine-tuning with small batches).

>>> import torch
>>> net = build_embedder("convnet4", embedding_dim=8, in_chans=1)
>>> z = net(torch.zeros(3, 1, 28, 28))
>>> tuple(z.shape), bool(torch.allclose(z.norm(dim=1), torch.ones(3)))
((3, 8), True)
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from dmlstudy.models.convnet import LOCAL_BACKBONES, register_with_timm

Pooling = Literal["avg", "max", "avgmax"]
POOLINGS = ("avg", "max", "avgmax")


def create_backbone(name: str, *, pretrained: bool, in_chans: int) -> nn.Module:
    """Feature extractor without pooling or classifier: this package's ConvNets directly, any
    other name through ``timm.create_model`` (timm is imported only then)."""
    kwargs: dict[str, Any] = dict(in_chans=in_chans, num_classes=0, global_pool="")
    if name in LOCAL_BACKBONES:
        return LOCAL_BACKBONES[name](pretrained=pretrained, **kwargs)
    import timm

    register_with_timm()
    if not timm.is_model(name):
        raise ValueError(
            f"unknown backbone {name!r}: use a timm model name (timm.list_models()) or one of "
            f"{', '.join(LOCAL_BACKBONES)}"
        )
    return timm.create_model(name, pretrained=pretrained, **kwargs)


class Embedder(nn.Module):
    """Backbone + pooling + head; ``config`` rebuilds the same architecture (stored in
    checkpoints)."""

    def __init__(
        self,
        backbone: str,
        *,
        embedding_dim: int,
        in_chans: int,
        pretrained: bool = False,
        pooling: Pooling = "avg",
        layer_norm: bool = False,
        normalize: bool = True,
        freeze_bn: bool = False,
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.config: dict[str, Any] = dict(
            backbone=backbone,
            embedding_dim=embedding_dim,
            in_chans=in_chans,
            pretrained=pretrained,
            pooling=pooling,
            layer_norm=layer_norm,
            normalize=normalize,
            freeze_bn=freeze_bn,
        )
        self.backbone = create_backbone(backbone, pretrained=pretrained, in_chans=in_chans)
        # Channels of backbone(x) with global_pool="": timm's head_hidden_size where the model keeps
        # a conv head after pooling (MobileNetV3/V4, GhostNet: num_features is the pre-head width).
        feat_dim = int(
            getattr(self.backbone, "head_hidden_size", None) or self.backbone.num_features
        )
        if embedding_dim > feat_dim:  # a linear map of feat_dim features: rank <= feat_dim (+1)
            raise ValueError(
                f"embedding_dim {embedding_dim} exceeds the {feat_dim} features of backbone "
                f"{backbone!r}: the embeddings would span at most {feat_dim} dimensions. Use "
                f"embedding_dim <= {feat_dim} or a wider backbone"
            )
        self.pooling = pooling
        # Swin-style timm models return B×H×W×C maps (output_fmt "NHWC"), not B×C×H×W.
        fmt = getattr(self.backbone, "output_fmt", "NCHW")
        self.nhwc = getattr(fmt, "value", fmt) == "NHWC"
        self.normalize = normalize
        self.freeze_bn = freeze_bn
        # RSW's official head uses LayerNorm without affine parameters.
        self.norm: nn.Module = (
            nn.LayerNorm(feat_dim, elementwise_affine=False) if layer_norm else nn.Identity()
        )
        self.head = nn.Linear(feat_dim, embedding_dim)
        if freeze_bn:
            for m in self._bn_modules():
                for p in m.parameters():
                    p.requires_grad_(False)

    def _bn_modules(self) -> list[nn.Module]:
        return [
            m for m in self.backbone.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
        ]

    def train(self, mode: bool = True) -> Embedder:
        super().train(mode)
        if mode and self.freeze_bn:
            for m in self._bn_modules():
                m.eval()
        return self

    def pool(self, features: torch.Tensor) -> torch.Tensor:
        """Global pooling of a B×C×H×W map (B×H×W×C for NHWC backbones, or B×N×C tokens) to B×C."""
        if features.ndim == 4:
            dims: tuple[int, ...] = (1, 2) if self.nhwc else (2, 3)
        elif features.ndim == 3:  # transformers with global_pool="" return tokens
            dims = (1,)
        elif features.ndim == 2:
            return features
        else:
            raise ValueError(f"unexpected backbone output shape {tuple(features.shape)}")
        if self.pooling == "avg":
            return features.mean(dim=dims)
        if self.pooling == "max":
            return features.amax(dim=dims)
        return features.mean(dim=dims) + features.amax(dim=dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.head(self.norm(self.pool(self.backbone(x))))
        return F.normalize(z.float(), dim=1) if self.normalize else z

    def backbone_parameters(self) -> list[nn.Parameter]:
        return list(self.backbone.parameters())

    def head_parameters(self) -> list[nn.Parameter]:
        return list(self.norm.parameters()) + list(self.head.parameters())


def build_embedder(
    backbone: str,
    *,
    embedding_dim: int,
    in_chans: int,
    pretrained: bool = False,
    pooling: Pooling = "avg",
    layer_norm: bool = False,
    normalize: bool = True,
    freeze_bn: bool = False,
) -> Embedder:
    """Build an :class:`Embedder` (pinned interface; see the module docstring)."""
    return Embedder(
        backbone,
        embedding_dim=embedding_dim,
        in_chans=in_chans,
        pretrained=pretrained,
        pooling=pooling,
        layer_norm=layer_norm,
        normalize=normalize,
        freeze_bn=freeze_bn,
    )
