"""All losses of the study behind one registry.

>>> "proxy_anchor" in list_losses()
True
"""

from dmlstudy.losses.base import (
    DMLLoss,
    Metric,
    build_loss,
    get_loss_class,
    list_losses,
    loss_hyperparameters,
    register_loss,
)

# Importing the modules registers their losses.
from dmlstudy.losses import miners  # noqa: F401,E402
from dmlstudy.losses import pair  # noqa: F401,E402
from dmlstudy.losses import proxy  # noqa: F401,E402
from dmlstudy.losses import proxy_gml  # noqa: F401,E402
from dmlstudy.losses import soft_triple  # noqa: F401,E402
from dmlstudy.losses import margin_softmax  # noqa: F401,E402
from dmlstudy.losses import direction  # noqa: F401,E402
from dmlstudy.losses import language  # noqa: F401,E402
from dmlstudy.losses import daal  # noqa: F401,E402
from dmlstudy.losses import rsw  # noqa: F401,E402

__all__ = [
    "DMLLoss",
    "Metric",
    "build_loss",
    "get_loss_class",
    "list_losses",
    "loss_hyperparameters",
    "register_loss",
]
