"""Optimizer with explicit parameter groups (backbone, head, loss) and per-epoch LR schedules.

Forgetting the loss's proxies in the optimizer is the most common DML user bug, so
:func:`build_optimizer` checks that every trainable parameter of the model and of the loss is in
exactly one group, and raises otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from dmlstudy.losses import DMLLoss
from dmlstudy.models import Embedder
from dmlstudy.training.settings import TrainSettings
from dmlstudy.training.stopping import Plateau


def param_groups(model: Embedder, loss: DMLLoss, s: TrainSettings) -> list[dict[str, Any]]:
    """Groups "backbone" (lr × backbone_lr_mult), "head" (lr) and the loss's own groups."""
    groups: list[dict[str, Any]] = [
        {
            "name": "backbone",
            "params": [p for p in model.backbone_parameters() if p.requires_grad],
            "lr": s.lr * s.backbone_lr_mult,
        },
        {
            "name": "head",
            "params": [p for p in model.head_parameters() if p.requires_grad],
            "lr": s.lr,
        },
    ]
    for i, g in enumerate(loss.param_groups(s.lr)):
        g = dict(g)
        g.setdefault("name", f"loss{i}" if i else "loss")
        g["params"] = list(g["params"])
        g.setdefault("lr", s.lr)
        groups.append(g)
    seen: dict[int, str] = {}
    for g in groups:
        for p in g["params"]:
            if id(p) in seen:
                raise ValueError(f"parameter in both groups {seen[id(p)]!r} and {g['name']!r}")
            seen[id(p)] = g["name"]
    trainable = [p for p in list(model.parameters()) + list(loss.parameters()) if p.requires_grad]
    missing = [p for p in trainable if id(p) not in seen]
    if missing:
        raise ValueError(
            f"{len(missing)} trainable parameter(s) are in no optimizer group "
            f"(loss {type(loss).__name__}.param_groups() must return all of its learnable "
            "parameters)"
        )
    return [g for g in groups if g["params"]]


def build_optimizer(model: Embedder, loss: DMLLoss, s: TrainSettings) -> torch.optim.Optimizer:
    groups = param_groups(model, loss, s)
    if s.optimizer == "adam":
        return torch.optim.Adam(groups, lr=s.lr, eps=s.optimizer_eps, weight_decay=s.weight_decay)
    if s.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=s.lr, eps=s.optimizer_eps, weight_decay=s.weight_decay)
    if s.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay)
    raise ValueError(f"optimizer must be adam, adamw or sgd, got {s.optimizer!r}")


def lr_factor(s: TrainSettings, plateau: Plateau | None = None) -> Callable[[int], float]:
    """Multiplier of every group's base LR at epoch ``e`` (0-based); schedule ``"plateau"``
    reads the drops taken so far from ``plateau`` (restored from the checkpoint on resume).

    >>> f = lr_factor(TrainSettings(prepared_dir=".", out_dir=".", loss="x", epochs=4,
    ...                             schedule="cosine"))
    >>> [round(f(e), 3) for e in range(4)]
    [1.0, 0.854, 0.5, 0.146]
    """
    if s.schedule == "cosine":
        return lambda e: 0.5 * (1 + math.cos(math.pi * e / s.epochs))
    if s.schedule == "step":
        return lambda e: s.step_gamma ** (e // s.step_epochs)
    if s.schedule == "plateau":
        if plateau is None:
            raise ValueError("schedule 'plateau' needs the run's Plateau state")
        return lambda e: plateau.lr_factor(s.plateau_factor)
    return lambda e: 1.0


def build_scheduler(
    opt: torch.optim.Optimizer, s: TrainSettings, plateau: Plateau | None = None
) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-epoch schedule; ``scheduler.step()`` is called once at the end of every epoch, after
    validation (so a plateau decision takes effect in the next epoch)."""
    return torch.optim.lr_scheduler.LambdaLR(opt, lr_factor(s, plateau))


def set_backbone_trainable(model: Embedder, opt: torch.optim.Optimizer, trainable: bool) -> None:
    """Warm-up: freeze (or unfreeze) the backbone group's parameters; BN layers stay in eval mode
    while frozen so their running statistics do not move either."""
    for g in opt.param_groups:
        if g.get("name") == "backbone":
            for p in g["params"]:
                p.requires_grad_(trainable)
    if not trainable:
        model.backbone.eval()


def clip_gradients(model: nn.Module, params: list[nn.Parameter], s: TrainSettings) -> None:
    """The settings' gradient clipping, after ``backward``: ``grad_clip_value`` clamps every
    gradient element of ``model`` (backbone and head; the official ProxyNCA++, Proxy-Anchor and
    RSW trainers call ``clip_grad_value_(model.parameters(), 10)``, the proxies unclipped), then
    ``grad_clip`` caps the global norm of ``params`` (every optimized parameter)."""
    if s.grad_clip_value is not None:
        torch.nn.utils.clip_grad_value_(
            [p for p in model.parameters() if p.grad is not None], s.grad_clip_value
        )
    if s.grad_clip is not None:
        torch.nn.utils.clip_grad_norm_([p for p in params if p.grad is not None], s.grad_clip)


def all_params(opt: torch.optim.Optimizer) -> list[nn.Parameter]:
    return [p for g in opt.param_groups for p in g["params"]]
