"""The loss registry: names, clear errors, defaults, runtime values (integration check of all
losses)."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

import numpy as np
import pytest

from dmlstudy.losses import DMLLoss, build_loss, get_loss_class, list_losses, loss_hyperparameters
from dmlstudy.losses.base import RUNTIME_KEYS

#: The study's losses today; a new loss module adds to them (discovered, no list to edit).
KNOWN = {
    "contrastive",
    "triplet",
    "npair",
    "multi_similarity",
    "proxy_nca",
    "proxy_nca_pp",
    "proxy_anchor",
    "proxy_gml",
    "soft_triple",
    "arcface",
    "cosface",
    "direction",
    "language",
    "daal",
    "rsw",
}


def _fake_encoder(texts: list[str]) -> np.ndarray:
    return np.array([[t.count(ch) + 0.1 for ch in "aeiou rst"] for t in texts])


def test_every_loss_module_is_discovered_and_every_known_loss_registered() -> None:
    import dmlstudy.losses as package

    public = {name for name in list_losses() if not name.startswith("_")}
    assert KNOWN <= public, f"missing: {sorted(KNOWN - public)}"
    assert list_losses() == sorted(list_losses())
    files = sorted(
        f"dmlstudy.losses.{p.stem}"
        for p in Path(package.__file__).parent.glob("*.py")
        if not p.name.startswith("_")
    )
    assert package.LOSS_MODULES == files  # every module, in name order, no import list
    for name in public:
        assert get_loss_class(name).__module__ in package.LOSS_MODULES, name


NEW_LOSS = """
from dmlstudy.losses.base import DMLLoss, register_loss


@register_loss("_discovered_example")
class Example(DMLLoss):
    def __init__(self, scale: float = 2.0) -> None:
        super().__init__()
        self.scale = scale

    def compute(self, embeddings, labels):
        return self.scale * embeddings.pow(2).mean()
"""


def test_a_new_module_alone_registers_its_loss(tmp_path, monkeypatch) -> None:
    """Discovery: a module dropped into a loss package is imported and its loss registered;
    private modules (``_*.py``) are not imported."""
    from dmlstudy.losses import base, discover_loss_modules

    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))
    package = tmp_path / "extra_losses_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "example.py").write_text(NEW_LOSS)
    (package / "_private.py").write_text("raise RuntimeError('private modules are skipped')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = len(list_losses())
    modules = discover_loss_modules("extra_losses_pkg", [str(package)])
    assert modules == ["extra_losses_pkg.example"]
    assert len(list_losses()) == before + 1 and "_discovered_example" in list_losses()
    assert loss_hyperparameters("_discovered_example") == {"scale": 2.0}
    assert build_loss("_discovered_example", scale=3.0).scale == 3.0
    for name in [m for m in sys.modules if m.startswith("extra_losses_pkg")]:
        monkeypatch.delitem(sys.modules, name)


def test_unknown_name_lists_choices_and_suggests() -> None:
    with pytest.raises(ValueError, match=r"Valid choices: .*contrastive.*triplet") as err:
        build_loss("tripplet")
    assert "(did you mean 'triplet'?)" in str(err.value)


def test_misspelt_keyword_lists_choices_and_suggests() -> None:
    with pytest.raises(TypeError, match="Valid choices: margin, miner") as err:
        build_loss("triplet", margn=0.2)
    assert "did you mean 'margin'" in str(err.value)
    with pytest.raises(TypeError, match="Valid choices: pos_margin, neg_margin"):
        build_loss("contrastive", learning_rate=1.0)


def test_none_means_default() -> None:
    loss = build_loss(
        "multi_similarity", alpha=None, beta=None, threshold=None, epsilon=None, mining=None
    )
    assert (loss.alpha, loss.beta, loss.threshold, loss.epsilon, loss.mining) == (
        2.0,
        50.0,
        0.5,
        0.1,
        True,
    )
    assert build_loss("triplet", margin=None, miner="hard").miner == "hard"


def test_runtime_values_ignored_or_required() -> None:
    loss = build_loss("triplet", num_classes=7, embedding_dim=16, class_names=["a"] * 7)  # ignored
    assert loss.margin == 0.1
    with pytest.raises(ValueError, match="num_classes"):
        build_loss("proxy_anchor", embedding_dim=8)
    assert build_loss("proxy_anchor", num_classes=3, embedding_dim=8).proxies.shape == (3, 8)


def test_loss_hyperparameters_are_the_constructor_defaults() -> None:
    assert loss_hyperparameters("triplet") == {"margin": 0.1, "miner": "all"}
    for name in list_losses():
        params = loss_hyperparameters(name)
        assert not set(params) & set(RUNTIME_KEYS), name
        missing = [k for k, v in params.items() if v is inspect.Parameter.empty]
        assert not missing, f"{name}: hyper-parameters without a default: {missing}"


@pytest.mark.parametrize("name", list_losses())
def test_every_loss_builds_with_runtime_values(name: str) -> None:
    extra = {"encoder": _fake_encoder} if name == "language" else {}
    loss = build_loss(
        name, num_classes=4, embedding_dim=8, class_names=["ab", "cd", "ef", "gh"], **extra
    )
    assert isinstance(loss, DMLLoss) and get_loss_class(name) is type(loss)
    assert loss.registry_name == name


def test_loss_hyperparameters_never_returns_empty() -> None:
    """A hyper-parameter without a default is a registration mistake: a clear error, never
    ``inspect.Parameter.empty`` leaking into params.yaml / reports."""
    from dmlstudy.losses import base as loss_base

    class _NoDefault(DMLLoss):
        def __init__(self, num_classes: int, *, margin: float, scale: float = 1.0) -> None:
            super().__init__()

    name = "_test_no_default"
    loss_base.register_loss(name)(_NoDefault)
    try:
        with pytest.raises(TypeError, match="margin"):
            loss_hyperparameters(name)
    finally:
        loss_base._REGISTRY.pop(name)
