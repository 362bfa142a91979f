"""Embedder: timm backbone + pooling + head; convnet4 registered with timm."""

from __future__ import annotations

import pytest
import timm
import torch
import torch.nn.functional as F

from dmlstudy.models import ConvNet4, build_embedder
from dmlstudy.models.convnet import register_with_timm


def test_convnet4_is_a_timm_model_with_feature_map() -> None:
    register_with_timm()
    net = timm.create_model("convnet4", in_chans=3, num_classes=0, global_pool="")
    assert isinstance(net, ConvNet4)
    assert tuple(net(torch.zeros(2, 3, 28, 28)).shape) == (2, 64, 1, 1)
    # 4 blocks of conv-BN-ReLU-pool, 64 channels
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 4 and all(c.out_channels == 64 and c.kernel_size == (3, 3) for c in convs)
    with pytest.raises(ValueError, match="no pretrained weights"):
        timm.create_model("convnet4", pretrained=True)


def test_convnet4_050_is_the_half_width_convnet() -> None:
    register_with_timm()
    net = timm.create_model("convnet4_050", in_chans=1, num_classes=0, global_pool="")
    assert isinstance(net, ConvNet4) and net.num_features == 32
    assert tuple(net(torch.zeros(2, 1, 28, 28)).shape) == (2, 32, 1, 1)
    assert [m.out_channels for m in net.modules() if isinstance(m, torch.nn.Conv2d)] == [32] * 4
    with pytest.raises(ValueError, match="no pretrained weights"):
        timm.create_model("convnet4_050", pretrained=True)


@pytest.mark.parametrize("pooling", ["avg", "max", "avgmax"])
def test_pooling_matches_formula(pooling: str) -> None:
    torch.manual_seed(0)
    net = build_embedder(
        "convnet4", embedding_dim=5, in_chans=1, pooling=pooling, normalize=False
    ).eval()
    x = torch.randn(3, 1, 40, 40)  # 40 px → 2×2 feature map, so avg and max differ
    fmap = net.backbone(x)
    assert fmap.shape[-1] == 2
    pooled = {
        "avg": fmap.mean((2, 3)),
        "max": fmap.amax((2, 3)),
        "avgmax": fmap.mean((2, 3)) + fmap.amax((2, 3)),
    }
    expected = net.head(pooled[pooling])
    torch.testing.assert_close(net(x), expected)


def test_normalize_and_layer_norm() -> None:
    x = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    raw = build_embedder(
        "convnet4", embedding_dim=6, in_chans=1, normalize=False, layer_norm=True
    ).eval()
    assert isinstance(raw.norm, torch.nn.LayerNorm) and not list(
        raw.norm.parameters()
    )  # no affine (RSW)
    z = raw(x)
    assert not torch.allclose(z.norm(dim=1), torch.ones(4))
    normed = build_embedder(
        "convnet4", embedding_dim=6, in_chans=1, normalize=True, layer_norm=True
    ).eval()
    normed.load_state_dict(raw.state_dict())
    torch.testing.assert_close(normed(x), F.normalize(z, dim=1))


def test_freeze_bn_keeps_running_stats_and_affine_fixed() -> None:
    net = build_embedder("convnet4", embedding_dim=4, in_chans=1, freeze_bn=True)
    net.train()
    bns = net._bn_modules()
    assert bns and all(not m.training for m in bns)
    assert all(not p.requires_grad for m in bns for p in m.parameters())
    before = [m.running_mean.clone() for m in bns]
    net(torch.randn(8, 1, 28, 28) * 3 + 1)
    assert all(torch.equal(b, m.running_mean) for b, m in zip(before, bns))
    free = build_embedder("convnet4", embedding_dim=4, in_chans=1).train()
    free(torch.randn(8, 1, 28, 28) * 3 + 1)
    assert not torch.equal(free._bn_modules()[0].running_mean, torch.zeros(64))


def test_any_timm_backbone_grayscale() -> None:
    net = build_embedder("resnet18", embedding_dim=16, in_chans=1, pooling="avgmax").eval()
    assert net.head.in_features == 512
    assert tuple(net(torch.zeros(1, 1, 64, 64)).shape) == (1, 16)
    assert net.config["backbone"] == "resnet18"


def test_backbone_with_conv_head_after_pooling() -> None:
    """MobileNetV3 keeps a 1×1 conv head in forward_head: its output width is head_hidden_size,
    not num_features (was: shape mismatch in the linear head)."""
    net = build_embedder("mobilenetv3_small_050", embedding_dim=8, in_chans=3).eval()
    assert tuple(net(torch.zeros(1, 3, 64, 64)).shape) == (1, 8)


def test_nhwc_backbone_pools_over_space() -> None:
    """Swin returns B×H×W×C maps (timm output_fmt NHWC); pooling must reduce H, W — not W, C."""
    net = build_embedder(
        "swin_tiny_patch4_window7_224",
        embedding_dim=4,
        in_chans=3,
        pooling="avgmax",
        normalize=False,
    ).eval()
    feats = torch.randn(2, 7, 7, 768)
    torch.testing.assert_close(net.pool(feats), feats.mean(dim=(1, 2)) + feats.amax(dim=(1, 2)))


def test_unknown_backbone_and_pooling_raise() -> None:
    with pytest.raises(ValueError, match="timm"):
        build_embedder("resnet_does_not_exist", embedding_dim=4, in_chans=1)
    with pytest.raises(ValueError, match="pooling"):
        build_embedder("convnet4", embedding_dim=4, in_chans=1, pooling="gem")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("backbone", "dim", "layer_norm"),
    [
        ("convnet4", 64, False),
        ("convnet4", 64, True),
        ("convnet4", 16, False),
        ("convnet4_050", 32, False),
    ],
)
def test_embedding_rank_equals_embedding_dim(backbone: str, dim: int, layer_norm: bool) -> None:
    """No rank bottleneck: on random inputs the embeddings span all ``dim`` dimensions (train
    mode: at initialisation, eval-mode BatchNorm leaves some ReLU channels dead on noise)."""
    torch.manual_seed(0)
    net = build_embedder(backbone, embedding_dim=dim, in_chans=1, layer_norm=layer_norm).train()
    with torch.no_grad():
        z = net(torch.randn(4 * dim, 1, 28, 28)).double()
    assert torch.linalg.matrix_rank(z, rtol=1e-6).item() == dim


def test_embedding_wider_than_the_backbone_is_refused() -> None:
    with pytest.raises(ValueError, match=r"exceeds the 32 features.*embedding_dim <= 32"):
        build_embedder("convnet4_050", embedding_dim=64, in_chans=1)


def test_local_convnets_do_not_import_timm() -> None:
    """Stage start-up: building the Omniglot ConvNet must not pay timm's (and torchvision's)
    import."""
    import subprocess
    import sys

    code = (
        "import sys; from dmlstudy.models import build_embedder; "
        "build_embedder('convnet4', embedding_dim=8, in_chans=1); "
        "print('timm' in sys.modules, 'torchvision' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
