"""All losses of the study behind one registry.

>>> "proxy_anchor" in list_losses()
True
"""

# Importing the modules registers their losses.
from dmlstudy.losses import (
    daal,  # noqa: F401
    direction,  # noqa: F401
    language,  # noqa: F401
    margin_softmax,  # noqa: F401
    miners,  # noqa: F401
    pair,  # noqa: F401
    proxy,  # noqa: F401
    proxy_gml,  # noqa: F401
    rsw,  # noqa: F401
    soft_triple,  # noqa: F401
)
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
    "get_loss_class",
    "list_losses",
    "loss_hyperparameters",
    "register_loss",
]
