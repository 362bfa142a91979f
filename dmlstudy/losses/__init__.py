"""All losses of the study behind one registry.

Every public module of this package (``dmlstudy/losses/*.py``, not ``_*.py``) is imported here,
in name order, so the losses it registers (``@register_loss``) exist: adding a loss is one new
module plus its ``losses.<name>`` section (with ``tuning.space.<name>``) in ``params.yaml``, with
no import list to edit (docs/adding-a-loss.md).

>>> "proxy_anchor" in list_losses()
True
"""

# Only ``import x`` of the standard library here: dmlstudy.training.fingerprint follows this
# file's ``from`` imports to find where a re-exported name is defined.
import collections.abc
import importlib
import pkgutil

from dmlstudy.losses.base import (
    DMLLoss,
    Metric,
    build_loss,
    get_loss_class,
    list_losses,
    loss_hyperparameters,
    register_loss,
)

__all__ = [
    "DMLLoss",
    "Metric",
    "build_loss",
    "discover_loss_modules",
    "get_loss_class",
    "list_losses",
    "loss_hyperparameters",
    "register_loss",
]


def discover_loss_modules(package: str, path: collections.abc.Iterable[str]) -> list[str]:
    """Import every public module (and subpackage) of ``package`` found on ``path`` (names
    starting with ``_`` are skipped), in name order; return their full names. Importing a module
    registers its losses; one that fails to import raises."""
    names = sorted(info.name for info in pkgutil.iter_modules(list(path)))
    modules = [f"{package}.{name}" for name in names if not name.startswith("_")]
    for module in modules:
        importlib.import_module(module)
    return modules


#: The modules of this package, imported (their losses registered).
LOSS_MODULES = discover_loss_modules(__name__, __path__)
