"""Properties every registered loss must have: finite values and gradients on edge-case batches,
invariance to the batch order, param_groups covering each learnable parameter exactly once, a valid
metric.  Parametrized over ``list_losses()``, so a newly registered loss is checked
automatically."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from dmlstudy.losses import DMLLoss, build_loss, list_losses

NUM_CLASSES, DIM = 6, 8
CLASS_NAMES = ["albatross", "sparrow", "sedan", "pickup truck", "hummingbird", "coupe"]
# N-pair pairs the samples of each class in batch order: only permutations that keep the
# within-class order leave it unchanged.
ORDER_DEPENDENT = {"npair"}
NAMES = [name for name in list_losses() if not name.startswith("_")]


def _fake_encoder(texts: list[str]) -> np.ndarray:
    """Deterministic stand-in text encoder (letter counts): no network, no model download."""
    return np.array([[t.count(ch) + 0.1 for ch in "abcdefghijklmnopqrstuvwxyz "] for t in texts])


def _build(name: str) -> DMLLoss:
    extra = {"encoder": _fake_encoder} if name == "language" else {}
    with torch.random.fork_rng(
        devices=[]
    ):  # proxy inits draw from the global generator: isolate it
        torch.manual_seed(0)
        loss = build_loss(
            name, num_classes=NUM_CLASSES, embedding_dim=DIM, class_names=CLASS_NAMES, **extra
        )
    return loss.double()


def _batches() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(12, DIM, generator=gen, dtype=torch.float64)
    return {
        "regular": (x, torch.arange(NUM_CLASSES).repeat(2)),
        "one_class": (x[:6], torch.zeros(6, dtype=torch.long)),
        "singletons": (x[:6], torch.arange(6)),
        "one_singleton_class": (x[:7], torch.tensor([0, 0, 1, 1, 2, 2, 5])),
        "coincident": (torch.ones(4, DIM, dtype=torch.float64), torch.tensor([0, 0, 1, 1])),
        "empty": (x[:0], torch.zeros(0, dtype=torch.long)),
    }


@pytest.mark.parametrize("name", NAMES)
def test_metric_attributes(name: str) -> None:
    loss = _build(name)
    assert loss.metric in ("cosine", "euclidean")
    assert isinstance(loss.normalize_embeddings, bool)
    loss.schedule(
        0, 100
    )  # every loss accepts the trainer's call (100 epochs: room for RSW's phase 2)


@pytest.mark.parametrize("name", NAMES)
def test_finite_values_and_gradients_on_edge_cases(name: str) -> None:
    for case, (x, y) in _batches().items():
        loss = _build(name)
        x = x.clone().requires_grad_(True)
        if case == "empty":  # a finite value, or a clear error naming the problem; never NaN
            try:
                value = loss(x, y)
            except ValueError as err:
                assert "empty" in str(err).lower(), err
                continue
        else:
            value = loss(x, y)
        assert value.dim() == 0 and torch.isfinite(value), (case, value)
        value.backward()
        assert x.grad is not None and torch.isfinite(x.grad).all(), case
        for pname, p in loss.named_parameters():
            assert p.grad is None or torch.isfinite(p.grad).all(), (case, pname)


@pytest.mark.parametrize("name", NAMES)
def test_batch_permutation_leaves_loss_unchanged(name: str) -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(18, DIM, generator=gen, dtype=torch.float64)
    y = torch.arange(NUM_CLASSES).repeat(3)[torch.randperm(18, generator=gen)]
    perm = torch.randperm(18, generator=gen)
    if name in ORDER_DEPENDENT:  # restore the within-class order of the original indices
        for c in y.unique():
            slots = torch.nonzero(y[perm] == c).squeeze(1)
            perm[slots] = torch.sort(perm[slots]).values
    loss = _build(name)
    reference = copy.deepcopy(loss)(x, y)  # deep copies: running statistics start equal
    torch.testing.assert_close(
        copy.deepcopy(loss)(x[perm], y[perm]), reference, rtol=1e-9, atol=1e-12
    )


@pytest.mark.parametrize("name", NAMES)
def test_param_groups_cover_every_learnable_parameter_once(name: str) -> None:
    loss = _build(name)
    groups = loss.param_groups(1e-3)
    grouped = [p for g in groups for p in g["params"]]
    assert len({id(p) for p in grouped}) == len(grouped), "a parameter is in two groups"
    learnable = {id(p) for p in loss.parameters() if p.requires_grad}
    assert {id(p) for p in grouped} == learnable
    for g in groups:
        assert g.get("lr", 1e-3) > 0


@pytest.mark.parametrize("name", NAMES)
def test_bfloat16_input_is_computed_in_float32(name: str) -> None:
    """bf16 embeddings (an autocast output) are promoted, not reduced in bf16: scaled logits
    (β 50, s 64) and RSW's unnormalized ‖x‖² + ‖p‖² − 2x·p lose ~1e-2 relative in bf16."""
    gen = torch.Generator().manual_seed(2)
    x = (3.0 * torch.randn(18, DIM, generator=gen)).to(torch.bfloat16)
    y = torch.arange(NUM_CLASSES).repeat(3)
    loss = _build(name).float()
    low = copy.deepcopy(loss)(x, y)
    assert low.dtype == torch.float32, low.dtype
    torch.testing.assert_close(low, copy.deepcopy(loss)(x.float(), y))


@pytest.mark.parametrize("name", NAMES)
def test_int32_labels_work_or_raise_clearly(name: str) -> None:
    """Labels that are int32 (e.g. from numpy) give the int64 result or a TypeError naming the fix,
    never an internal index-dtype error from gather/one_hot/cross_entropy."""
    x, y = _batches()["regular"]
    loss = _build(name)
    try:
        value = copy.deepcopy(loss)(x, y.int())
    except TypeError as err:
        assert "int64" in str(err) and ".long()" in str(err), err
    else:
        torch.testing.assert_close(value, copy.deepcopy(loss)(x, y))
