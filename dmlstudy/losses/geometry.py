"""Loss geometry on a 2-D toy embedding: which way does each loss push every sample?

``loss_forces`` builds a loss with ``embedding_dim=2`` (``build_loss``), evaluates it on a small
seeded toy batch and returns ``−∂L/∂x_i`` for every sample (autograd) — the "force" a gradient
step applies — plus the loss's learnable 2-D parameters (proxies / segment vertices / centers).

>>> x, y = toy_batch(num_classes=3, per_class=3, seed=0)
>>> f = loss_forces("contrastive", {}, x, y)
>>> f.forces.shape, f.proxies is None
((9, 2), True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from dmlstudy.losses import build_loss


def toy_batch(
    num_classes: int = 3, per_class: int = 4, *, seed: int = 0, spread: float = 0.6
) -> tuple[np.ndarray, np.ndarray]:
    """Samples of ``num_classes`` classes around evenly spaced directions on the unit circle,
    with Gaussian jitter (``spread`` radians / radius), so classes overlap a little."""
    rng = np.random.default_rng(seed)
    angles = np.repeat(2 * np.pi * np.arange(num_classes) / num_classes, per_class)
    angles = angles + rng.normal(0, spread, angles.shape)
    radius = 1 + rng.normal(0, 0.15, angles.shape)
    x = np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=1).astype(np.float64)
    return x, np.repeat(np.arange(num_classes), per_class)


@dataclass(frozen=True)
class Forces:
    loss: float
    forces: np.ndarray  # (N, 2) = −∂L/∂x
    proxies: np.ndarray | None  # (P, 2) learnable 2-D points of the loss, if any


def _toy_encoder(names: list[str]) -> np.ndarray:
    """Text stand-in for the toy: orthogonal 'names' (the real encoder needs real class names)."""
    return np.eye(len(names), dtype=np.float32)


def loss_forces(
    name: str, params: dict[str, Any], x: np.ndarray, y: np.ndarray, *, seed: int = 0
) -> Forces:
    """Loss value, ``−∂L/∂x`` and 2-D learnable points of loss ``name`` on the toy batch.

    Proxies are initialised by the loss itself under ``torch.manual_seed``-free seeding: a
    ``torch.Generator`` seeded with ``seed`` is installed with ``torch.random.fork_rng``.
    The language loss gets orthogonal stand-in text embeddings (documented in the notebook).
    """
    params = dict(params)
    if name == "language":
        params["encoder"] = _toy_encoder
    num_classes = int(y.max()) + 1
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        loss = build_loss(
            name,
            num_classes=num_classes,
            embedding_dim=2,
            class_names=[f"class {c}" for c in range(num_classes)],
            **params,
        ).double()
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    value = loss(xt, torch.as_tensor(y, dtype=torch.long))
    (grad,) = torch.autograd.grad(value, xt)
    points = [
        p.detach().reshape(-1, 2).numpy()
        for p in loss.parameters()
        if p.ndim >= 2 and p.shape[-1] == 2
    ]
    return Forces(float(value.detach()), -grad.numpy(), np.concatenate(points) if points else None)


def rsw_warp_curves(
    params: dict[str, Any], d_max: float | None = None, n: int = 200
) -> dict[str, np.ndarray]:
    """RSW's warped true-class distance ``w(d)`` for both phases (arrays ``d``, ``phase1``,
    ``phase2``)."""
    from dmlstudy.losses.rsw import warp_true_distance

    alpha1, alpha2 = params.get("alpha", 28.4), params.get("phase2_alpha", 24.68)
    d = torch.linspace(0, d_max or 1.5 * max(alpha1, alpha2), n, dtype=torch.float64)
    margin = params.get("margin", 1.3)
    p1 = warp_true_distance(
        d, alpha=alpha1, k1=params.get("k1", 0.93), k2=params.get("k2", 1.15), margin=margin
    )
    p2 = warp_true_distance(
        d,
        alpha=alpha2,
        k1=params.get("phase2_k1", 0.95),
        k2=params.get("phase2_k2", 1.2),
        margin=margin,
    )
    return {"d": d.numpy(), "phase1": p1.numpy(), "phase2": p2.numpy()}
