"""Batched device-side augmentation against exact slicing and torchvision oracles."""

from __future__ import annotations

import math

import torch
import torchvision.transforms.functional as TF
from torchvision.transforms import RandomResizedCrop

from dmlstudy.training.augment import (
    Preprocess,
    crop_resize,
    eval_transform,
    sample_crops,
    step_generator,
    to_float,
    train_transform,
)


def _images(n: int = 3, h: int = 16, w: int = 16, c: int = 1) -> torch.Tensor:
    return torch.randint(
        0, 256, (n, h, w, c), dtype=torch.uint8, generator=torch.Generator().manual_seed(1)
    )


def test_to_float_normalizes() -> None:
    x = _images(c=3)
    out = to_float(x, (0.5, 0.4, 0.3), (0.2, 0.25, 0.5))
    ref = (
        x.permute(0, 3, 1, 2).float() / 255 - torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1)
    ) / torch.tensor([0.2, 0.25, 0.5]).view(1, 3, 1, 1)
    torch.testing.assert_close(out, ref)


def test_crop_resize_equals_slicing_and_flip() -> None:
    x = to_float(_images(h=16, w=20), (0.0,), (1.0,))
    boxes = torch.tensor([[4.0, 2.0, 8.0, 8.0]] * 3)
    torch.testing.assert_close(crop_resize(x, boxes, 8), x[..., 2:10, 4:12])
    flip = torch.tensor([True, False, True])
    out = crop_resize(x, boxes, 8, flip)
    torch.testing.assert_close(out[0], x[0, :, 2:10, 4:12].flip(-1))
    torch.testing.assert_close(out[1], x[1, :, 2:10, 4:12])


def test_sample_crops_respects_scale_ratio_and_bounds() -> None:
    g = torch.Generator().manual_seed(0)
    b = sample_crops(1500, 30, 40, (0.2, 0.9), (0.75, 4 / 3), g)
    x0, y0, w, h = b.unbind(1)
    assert (
        (x0 >= 0).all()
        and (y0 >= 0).all()
        and (x0 + w <= 40 + 1e-4).all()
        and (y0 + h <= 30 + 1e-4).all()
    )
    area, ratio = w * h / 1200, w / h
    assert area.min() >= 0.2 - 1e-5 and area.max() <= 0.9 + 1e-5
    assert ratio.min() >= 0.75 - 1e-5 and ratio.max() <= 4 / 3 + 1e-5
    # oracle: torchvision's sampler gives the same mean area fraction
    torch.manual_seed(0)
    tv = [
        RandomResizedCrop.get_params(torch.zeros(1, 30, 40), [0.2, 0.9], [0.75, 4 / 3])
        for _ in range(1500)
    ]
    tv_area = torch.tensor([hh * ww / 1200 for _, _, hh, ww in tv])
    assert abs(tv_area.mean() - area.mean()) < 0.03


def test_sample_crops_fallback_is_center_crop() -> None:
    b = sample_crops(5, 20, 20, (1.0, 1.0), (2.0, 3.0), torch.Generator().manual_seed(0))
    torch.testing.assert_close(b, torch.tensor([[0.0, 5.0, 20.0, 10.0]] * 5))


def test_identity_augmentation_is_identity() -> None:
    x = _images(h=12, w=12)
    p = Preprocess(image_size=12, eval_resize=12, mean=(0.5,), std=(0.5,))
    out = train_transform(
        x, p, scale=(1.0, 1.0), ratio=(1.0, 1.0), hflip=False, generator=step_generator(0, 0, 0)
    )
    torch.testing.assert_close(out, to_float(x, (0.5,), (0.5,)))


def test_train_transform_seeded_by_seed_epoch_step() -> None:
    x = _images(h=28, w=28)
    p = Preprocess(image_size=24, eval_resize=28, mean=(0.5,), std=(0.5,))
    kw = dict(scale=(0.3, 1.0), ratio=(0.75, 1.33), hflip=True)
    a = train_transform(x, p, generator=step_generator(3, 1, 2), **kw)
    b = train_transform(x, p, generator=step_generator(3, 1, 2), **kw)
    c = train_transform(x, p, generator=step_generator(3, 1, 3), **kw)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_eval_transform_matches_torchvision() -> None:
    x = _images(n=2, h=32, w=40, c=3)
    p = Preprocess(image_size=24, eval_resize=28, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    ref = TF.center_crop(TF.resize(x.permute(0, 3, 1, 2).float() / 255, 28, antialias=True), 24)
    torch.testing.assert_close(eval_transform(x, p), ref, atol=1e-5, rtol=0)
    assert math.isclose(p.to_dict()["eval_resize"], 28) and Preprocess.from_dict(p.to_dict()) == p


def test_pretrained_backbone_gets_its_own_normalization() -> None:
    """A pretrained timm backbone is fed the statistics its weights were trained with (ViT/Inception
    weights use 0.5, not ImageNet's); non-pretrained / channel mismatch → the documented
    defaults."""
    import timm

    from dmlstudy.training.augment import IMAGENET_MEAN, IMAGENET_STD, backbone_mean_std

    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0)
    assert backbone_mean_std(vit, 3, pretrained=True) == ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    assert backbone_mean_std(vit, 3, pretrained=False) == (IMAGENET_MEAN, IMAGENET_STD)
    assert backbone_mean_std(vit, 1, pretrained=True) == (
        (0.5,),
        (0.5,),
    )  # gray default, not 3 values
    assert backbone_mean_std(object(), 3, pretrained=True) == (IMAGENET_MEAN, IMAGENET_STD)
