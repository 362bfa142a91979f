"""The loss skeleton: forward is final (checks once, casts, empty batch), check_batch's errors."""

from __future__ import annotations

import pytest
import torch

from dmlstudy.losses import DMLLoss, build_loss
from dmlstudy.losses.interface import check_batch


def test_forward_cannot_be_overridden() -> None:
    with pytest.raises(TypeError, match=r"overrides forward\(\); implement compute"):

        class _Bad(DMLLoss):
            def forward(self, embeddings, labels):
                return embeddings.sum()


def test_compute_gets_a_checked_cast_batch() -> None:
    seen = {}

    class _Probe(DMLLoss):
        def compute(self, embeddings, labels):
            seen.update(dtype=embeddings.dtype, labels=labels.dtype)
            return embeddings.sum()

    probe = _Probe()
    probe(torch.ones(3, 2, dtype=torch.bfloat16), torch.tensor([0, 1, 1], dtype=torch.int32))
    assert seen == {"dtype": torch.float32, "labels": torch.int64}
    seen.clear()
    x = torch.ones(0, 2, requires_grad=True)
    value = probe(x, torch.zeros(0, dtype=torch.long))  # empty: a zero, compute is not called
    value.backward()
    assert value.item() == 0.0 and not seen and torch.equal(x.grad, torch.zeros(0, 2))


@pytest.mark.parametrize(
    ("x", "y", "kw", "error", "match"),
    [
        (torch.zeros(3), torch.zeros(3), {}, ValueError, "embeddings must be B×d"),
        (torch.zeros(3, 2), torch.zeros(3, 1), {}, ValueError, "1-D tensor of length 3"),
        (torch.zeros(3, 2), torch.zeros(2), {}, ValueError, "1-D tensor of length 3"),
        (torch.zeros(3, 2), torch.zeros(3), {}, TypeError, "integer tensor, got torch.float32"),
        (torch.zeros(3, 2), torch.tensor([0, 1, 4]), {"num_classes": 4}, ValueError, r"0\.\.3"),
        (torch.zeros(3, 2), torch.tensor([0, -1, 1]), {"num_classes": 4}, ValueError, "min -1"),
        (torch.zeros(3, 2), torch.tensor([0, 1, 1]), {"embedding_dim": 5}, ValueError, r"\(B, 5\)"),
    ],
)
def test_check_batch_errors_name_the_problem(x, y, kw, error, match) -> None:
    with pytest.raises(error, match=match):
        check_batch(x, y, owner="probe", **kw)


def test_proxy_losses_check_the_embedding_size() -> None:
    loss = build_loss("proxy_anchor", num_classes=3, embedding_dim=4)
    with pytest.raises(ValueError, match=r"proxy_anchor expects embeddings of shape \(B, 4\)"):
        loss(torch.zeros(2, 5), torch.tensor([0, 1]))
