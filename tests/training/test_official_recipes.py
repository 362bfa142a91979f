"""The official training recipes beyond the loss (docs/losses.md, "Official recipes vs the
study"): what params.yaml gives ProxyNCA++ and RSW runs, Adam eps on every parameter group,
gradient value clipping of the model, warm-up epochs without validation rounds."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from dmlstudy.config import load_config
from dmlstudy.losses import build_loss
from dmlstudy.models import build_embedder
from dmlstudy.study.runs import train_settings
from dmlstudy.training import TrainSettings, train
from dmlstudy.training.optim import build_optimizer, clip_gradients

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def config():
    return load_config(REPO / "params.yaml").everything()  # the paper study's losses too


def _settings(config, loss: str, tuned: bool) -> TrainSettings:
    return train_settings(config, "omniglot", loss, 0, prepared_dir="p", out_dir="o", tuned=tuned)


def _tuned(config, loss: str) -> tuple[bool, float]:
    """(layer_norm, optimizer_eps) of ``loss``'s tuned Omniglot values, else its recipe's."""
    recipe = config.losses[loss]["train"]
    won = config.losses[loss]["per_dataset"]["omniglot"].get("train", {})
    return (
        won.get("layer_norm", recipe["layer_norm"]),
        won.get("optimizer_eps", recipe["optimizer_eps"]),
    )


@pytest.mark.parametrize("tuned", [False, True])
def test_proxy_nca_pp_runs_train_with_the_official_recipe(config, tuned):
    """euwern/proxynca_pp config/cub.json: 8 classes x 4, GMP -> LayerNorm, Adam eps 1 and no
    weight decay everywhere, 5 warm-up epochs, clip_grad_value_(model, 10). The tuned runs keep
    every element but the LayerNorm and the eps, choices of the tuning space (official first),
    which take the campaign's winner."""
    s = _settings(config, "proxy_nca_pp", tuned)
    assert (s.sampler, s.m_per_class, s.batch_size % 4) == ("m_per_class", 4, 0)
    assert (s.pooling, s.weight_decay) == ("max", 0.0)
    assert (s.warmup_epochs, s.grad_clip_value) == (5, 10.0)
    if not tuned:  # trial 0 of the campaign: the published values and the official head
        assert s.layer_norm and s.loss_params["temperature"] == pytest.approx(1 / 9)
        assert s.optimizer_eps == 1.0
    else:
        assert (s.layer_norm, s.optimizer_eps) == _tuned(config, "proxy_nca_pp")
    space = config.tuning.space["proxy_nca_pp"]
    assert space["train.layer_norm"] == {"choice": [True, False]}  # official first
    assert space["train.optimizer_eps"] == {"choice": [1.0, 1e-8]}


@pytest.mark.parametrize("tuned", [False, True])
def test_rsw_runs_train_with_the_official_recipe_and_tune_both_phases(config, tuned):
    """Realigned-Softmax-Warping Image-Retrieval (CUB): 8 per class, GMP+GAP -> LayerNorm, Adam
    eps 1 on every group, no warm-up, clip_grad_value_(model, 10); phase 2 on (from the lr drop
    under the plateau rule) and its warp in the tuning space with an on/off choice."""
    s = _settings(config, "rsw", tuned)
    assert (s.sampler, s.m_per_class, s.batch_size % 8) == ("m_per_class", 8, 0)
    assert (s.pooling, s.warmup_epochs, s.grad_clip_value) == ("avgmax", 0, 10.0)
    if not tuned:
        assert s.layer_norm and s.loss_params["phase2_epochs"] > 0 and s.optimizer_eps == 1.0
        assert s.loss_params["phase2_temperature"] == 1.0
    else:  # the campaign's winner: LayerNorm, eps and phase 2 on/off are choices of its space
        assert (s.layer_norm, s.optimizer_eps) == _tuned(config, "rsw")
        won = config.losses["rsw"]["per_dataset"]["omniglot"]
        assert s.loss_params["phase2_epochs"] == won.get("phase2_epochs", 30)
    space = config.tuning.space["rsw"]
    assert {"phase2_temperature", "phase2_alpha"} <= set(space)
    assert space["phase2_epochs"] == {"choice": [30, 0]}  # on (official) first, or off
    assert space["train.layer_norm"] == {"choice": [True, False]}


def test_other_official_recipe_elements_reach_their_runs(config):
    """Adam eps 0.01 of SoftTriple and ProxyGML on every group, Proxy-Anchor's GAP+GMP head,
    warm-up epoch and value clipping, multi-similarity's GMP head, language's 2 per class."""
    got = {loss: _settings(config, loss, False) for loss in config.study.losses}
    assert got["soft_triple"].optimizer_eps == got["proxy_gml"].optimizer_eps == 0.01
    pa = got["proxy_anchor"]
    assert (pa.sampler, pa.pooling, pa.warmup_epochs, pa.grad_clip_value) == (
        "random",
        "avgmax",
        1,
        10.0,
    )
    assert got["multi_similarity"].pooling == "max"
    assert (got["language"].sampler, got["language"].m_per_class) == ("m_per_class", 2)
    assert got["npair"].m_per_class == 2


def _model_and_loss(**overrides):
    s = TrainSettings(prepared_dir="p", out_dir="o", loss="proxy_nca_pp", **overrides)
    torch.manual_seed(0)
    model = build_embedder("convnet4", embedding_dim=8, in_chans=1, layer_norm=True)
    loss = build_loss("proxy_nca_pp", num_classes=5, embedding_dim=8)
    return s, model, loss


def test_optimizer_eps_applies_to_every_group_or_the_proxies_only():
    s, model, loss = _model_and_loss(optimizer="adam", optimizer_eps=1.0)
    opt = build_optimizer(model, loss, s)
    assert {g["name"]: g["eps"] for g in opt.param_groups} == {
        "backbone": 1.0,
        "head": 1.0,
        "proxy_nca_pp.proxies": 1.0,
    }
    s, model, loss = _model_and_loss(optimizer="adamw")  # default eps: the proxies' own eps 1
    eps = {g["name"]: g["eps"] for g in build_optimizer(model, loss, s).param_groups}
    assert eps == {"backbone": 1e-8, "head": 1e-8, "proxy_nca_pp.proxies": 1.0}


def test_grad_clip_value_clamps_the_models_gradients_not_the_proxies():
    s, model, loss = _model_and_loss(grad_clip_value=10.0)
    params = [*model.parameters(), *loss.parameters()]
    for i, p in enumerate(params):
        p.grad = torch.linspace(-50.0, 50.0, p.numel()).view_as(p) * (i + 1)
    proxies_before = loss.proxies.grad.clone()
    small = next(iter(model.parameters()))
    small.grad = torch.full_like(small, 0.5)
    clip_gradients(model, params, s)
    assert all(p.grad.abs().max() <= 10.0 for p in model.parameters())
    assert any(p.grad.abs().max() == 10.0 for p in model.parameters())
    assert torch.equal(small.grad, torch.full_like(small, 0.5))  # below the bound: unchanged
    assert torch.equal(loss.proxies.grad, proxies_before)  # official: model.parameters() only
    s2, *_ = _model_and_loss(grad_clip=1.0)  # the global-norm clip still applies to all
    clip_gradients(model, params, s2)
    total = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))
    assert total.item() == pytest.approx(1.0, rel=1e-4)


def test_validation_rounds_start_after_the_warmup():
    s = TrainSettings(prepared_dir="p", out_dir="o", loss="x", epochs=9, warmup_epochs=3)
    assert [e for e in range(9) if s.validates(e)] == [3, 4, 5, 6, 7, 8]
    s = s.model_copy(update={"eval_every": 2})
    assert [e for e in range(9) if s.validates(e)] == [3, 5, 7, 8]  # and always the last
    s = s.model_copy(update={"warmup_epochs": 1})
    assert [e for e in range(9) if s.validates(e)] == [1, 3, 5, 7, 8]  # photo datasets: as before


def test_proxy_nca_pp_recipe_trains_end_to_end(
    make_settings: Callable[..., TrainSettings], tmp_path: Path
) -> None:
    """The whole recipe in one tiny run: no validation round (so no plateau decision) in the
    warm-up epochs, the backbone frozen during them."""
    s = make_settings(
        tmp_path / "pnpp",
        loss="proxy_nca_pp",
        epochs=3,
        warmup_epochs=2,
        pooling="max",
        layer_norm=True,
        optimizer="adam",
        optimizer_eps=1.0,
        weight_decay=0.0,
        grad_clip_value=10.0,
    )
    metrics = train(s)
    assert ["val" in h for h in metrics["history"]] == [False, False, True]
    assert metrics["best_epoch"] == 2
