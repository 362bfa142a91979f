"""Code fingerprints of meaning, not bytes, and of the code a run executes only
(dmlstudy/training/fingerprint.py): a comment is not a retrain, nor is another loss's edit."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import dmlstudy
from dmlstudy.losses import list_losses
from dmlstudy.training.fingerprint import code_fingerprint, loss_modules

PACKAGE = Path(dmlstudy.__file__).parent
PAIR_LOSSES = {"contrastive", "triplet", "npair", "multi_similarity"}


@pytest.fixture
def package(tmp_path: Path) -> Path:
    """A copy of the dmlstudy sources to edit."""
    root = tmp_path / "dmlstudy"
    shutil.copytree(PACKAGE, root, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def _fingerprints(root: Path) -> dict[str, str]:
    return {loss: code_fingerprint(loss, root=root) for loss in list_losses()}


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{path.name}: {old!r} not found"
    path.write_text(text.replace(old, new, 1))


def test_comments_docstrings_and_formatting_leave_every_fingerprint(package: Path) -> None:
    before = _fingerprints(package)
    pair = package / "losses" / "pair.py"
    pair.write_text("# a comment line at the top\n\n\n" + pair.read_text() + "\n# the end\n")
    _edit(pair, '"""', '"""An edited module docstring.\n\n')  # the module docstring
    loop = package / "training" / "loop.py"
    _edit(loop, "def train(", "# one comment in the trainer\n\n\ndef train(")
    _edit(loop, "def train(", "def train(  # a comment in the signature\n")
    _edit(pair, " = ", "  =  ")  # formatting only
    assert _fingerprints(package) == before


def test_a_code_edit_changes_only_the_losses_that_run_it(package: Path) -> None:
    before = _fingerprints(package)
    (package / "losses" / "pair.py").write_text(
        (package / "losses" / "pair.py").read_text() + "\nEDITED = 1\n"
    )
    after = _fingerprints(package)
    changed = {loss for loss in before if after[loss] != before[loss]}
    # pair.py's losses, the direction loss (imports pair.py) and language (wraps multi_similarity)
    assert changed == PAIR_LOSSES | {"direction", "language"}

    (package / "losses" / "rsw.py").write_text(
        (package / "losses" / "rsw.py").read_text() + "\nEDITED = 1\n"
    )
    again = _fingerprints(package)
    assert {loss for loss in after if again[loss] != after[loss]} == {"rsw"}

    epoch = package / "training" / "epoch.py"  # the trainer's code: every loss runs it
    epoch.write_text(epoch.read_text() + "\nEDITED = 1\n")
    last = _fingerprints(package)
    assert all(last[loss] != again[loss] for loss in again)


def test_a_new_loss_module_leaves_existing_fingerprints(package: Path) -> None:
    before = _fingerprints(package)
    (package / "losses" / "new_loss.py").write_text(
        "from dmlstudy.losses.base import DMLLoss, register_loss\n\n\n"
        '@register_loss("new_loss")\nclass NewLoss(DMLLoss):\n    pass\n'
    )
    # discovered by dmlstudy/losses/__init__.py: the module alone is the whole addition
    assert _fingerprints(package) == before


def test_a_run_fingerprints_its_loss_and_the_trainer_not_its_siblings() -> None:
    modules = set(loss_modules("contrastive"))
    for module in (
        "dmlstudy.losses.pair",
        "dmlstudy.losses.miners",
        "dmlstudy.losses.base",
        "dmlstudy.training.loop",
        "dmlstudy.training.fingerprint",
        "dmlstudy.models.embedder",
        "dmlstudy.data.sampler",
        "dmlstudy.evaluation.evaluator",
    ):
        assert module in modules
    siblings = {"proxy", "proxy_common", "rsw", "daal", "soft_triple", "language", "direction"}
    assert not modules & {f"dmlstudy.losses.{m}" for m in siblings}
    assert "dmlstudy.losses" not in modules  # the registry's __init__ only imports every loss
    # a regularizer counts the base loss it wraps
    assert "dmlstudy.losses.pair" in loss_modules("language")
    wrapped = loss_modules("language", {"base": "proxy_anchor"})
    assert {"dmlstudy.losses.proxy", "dmlstudy.losses.language"} <= set(wrapped)
    assert code_fingerprint("language", {"base": "proxy_anchor"}) != code_fingerprint("language")


def test_a_package_init_importing_from_outside_dmlstudy_is_followed(package: Path) -> None:
    """A ``from collections.abc import …`` in a package ``__init__`` that a loss's module takes a
    name from used to crash the re-export walk (``zip(strict=True)`` over no dmlstudy targets);
    it is skipped, and the fingerprints are those of the same code without it."""
    before = _fingerprints(package)
    init = package / "losses" / "__init__.py"
    init.write_text("from collections.abc import Sequence  # noqa: F401\n" + init.read_text())
    assert _fingerprints(package) == before
