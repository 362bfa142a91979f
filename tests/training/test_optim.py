"""Optimizer parameter groups (proxies included!), LR schedules, settings validation."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from dmlstudy.losses import DMLLoss, build_loss
from dmlstudy.models import build_embedder
from dmlstudy.training import TrainSettings
from dmlstudy.training.optim import build_optimizer, build_scheduler, param_groups


def _settings(**kw: Any) -> TrainSettings:
    return TrainSettings(prepared_dir=".", out_dir=".", loss="proxy_anchor", **kw)


def test_param_groups_include_proxies_with_multiplier() -> None:
    s = _settings(lr=1e-4, backbone_lr_mult=0.1, weight_decay=0.01, optimizer="adamw")
    model = build_embedder("convnet4", embedding_dim=8, in_chans=1)
    loss = build_loss("proxy_anchor", num_classes=5, embedding_dim=8)
    opt = build_optimizer(model, loss, s)
    groups = {g["name"]: g for g in opt.param_groups}
    assert set(groups) == {"backbone", "head", "proxy_anchor.proxies"}
    assert groups["backbone"]["lr"] == pytest.approx(1e-5) and groups["head"][
        "lr"
    ] == pytest.approx(1e-4)
    proxies = groups["proxy_anchor.proxies"]
    assert proxies["params"][0] is loss.proxies and proxies["lr"] == pytest.approx(
        1e-4 * loss.proxy_lr_multiplier
    )
    n_opt = sum(p.numel() for g in opt.param_groups for p in g["params"])
    assert n_opt == sum(p.numel() for p in list(model.parameters()) + list(loss.parameters()))


class _ForgetfulLoss(DMLLoss):
    def __init__(self) -> None:
        super().__init__()
        self.proxies = nn.Parameter(torch.zeros(3, 4))

    def param_groups(self, base_lr: float) -> list[dict[str, Any]]:
        return []  # the classic bug: proxies never reach the optimizer


def test_forgotten_loss_parameters_raise() -> None:
    model = build_embedder("convnet4", embedding_dim=4, in_chans=1)
    with pytest.raises(ValueError, match="no optimizer group"):
        param_groups(model, _ForgetfulLoss(), _settings())


def test_frozen_bn_parameters_are_left_out() -> None:
    model = build_embedder("convnet4", embedding_dim=4, in_chans=1, freeze_bn=True)
    groups = param_groups(model, build_loss("multi_similarity"), _settings())
    ids = {id(p) for g in groups for p in g["params"]}
    assert all(id(p) not in ids for m in model._bn_modules() for p in m.parameters())


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ("cosine", [1e-3 * 0.5 * (1 + math.cos(math.pi * e / 4)) for e in range(4)]),
        ("step", [1e-3, 1e-3, 5e-4, 5e-4]),
        ("none", [1e-3] * 4),
    ],
)
def test_schedules(schedule: str, expected: list[float]) -> None:
    s = _settings(
        lr=1e-3, epochs=4, schedule=schedule, step_epochs=2, step_gamma=0.5, optimizer="sgd"
    )
    opt = build_optimizer(
        build_embedder("convnet4", embedding_dim=4, in_chans=1), build_loss("multi_similarity"), s
    )
    sched = build_scheduler(opt, s)
    seen = []
    for _ in range(4):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx(expected)


def test_settings_reject_typos_and_inconsistent_values() -> None:
    with pytest.raises(ValidationError, match="m_per_clas"):
        _settings(m_per_clas=4)
    with pytest.raises(ValidationError, match="multiple of m_per_class"):
        _settings(batch_size=10, m_per_class=4)
    with pytest.raises(ValidationError, match="optimizer"):
        _settings(optimizer="rmsprop")
    with pytest.raises(ValidationError, match="eval_resize"):
        _settings(image_size=224, eval_resize=200)
    assert _settings(loss_params={"alpha": 16}).loss_params == {"alpha": 16}
