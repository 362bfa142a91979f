"""The one "did you mean" helper of the project: every registry and params error that rejects a
name suggests the closest valid one with it (stdlib ``difflib``; ratio cut-off 0.6).

This module imports nothing from dmlstudy, so every layer may use it (the losses registry
included; tests/test_layering.py checks both).

>>> did_you_mean("tripplet", ["triplet", "npair"])
" (did you mean 'triplet'?)"
>>> did_you_mean("xyz", ["triplet"])
''
>>> did_you_mean("learning_rate", ["lr", "epochs"])
" (did you mean 'lr'?)"
>>> did_you_mean("trian", ["margin", "train", "per_dataset"])
" (did you mean 'train'?)"
>>> did_you_mean("nothing", [])
''
>>> check_choice("omniglott", ("omniglot", "cub200"), "dataset")
Traceback (most recent call last):
...
ValueError: unknown dataset 'omniglott' (did you mean 'omniglot'?). Valid choices: omniglot, cub200
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

#: Names people write for a setting that spelling distance cannot find (``learning_rate`` is far
#: from ``lr``): each is suggested where its target is a valid choice.
ALIASES = {
    "learning_rate": "lr",
    "lr_rate": "lr",
    "wd": "weight_decay",
    "batchsize": "batch_size",
    "bs": "batch_size",
    "num_epochs": "epochs",
    "max_epochs": "epochs",
    "embedding_size": "embedding_dim",
    "embed_dim": "embedding_dim",
    "samples_per_class": "m_per_class",
    "temp": "temperature",
}


def did_you_mean(value: object, valid: Iterable[object]) -> str:
    """``" (did you mean 'x'?)"`` for the valid name closest to ``value`` (or its alias in
    ``ALIASES``), or ``""``."""
    valid = [str(v) for v in valid]
    alias = ALIASES.get(str(value).lower())
    close = [alias] if alias in valid else difflib.get_close_matches(str(value), valid, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_choice(value: str, valid: Iterable[str], what: str) -> str:
    """``value`` if it is one of ``valid``, else ``ValueError`` naming the closest choice and all
    the valid ones (``what`` names the kind of thing: "dataset", "loss (study.losses)")."""
    valid = list(valid)
    if value not in valid:
        raise ValueError(
            f"unknown {what} {value!r}{did_you_mean(value, valid)}. "
            f"Valid choices: {', '.join(valid)}"
        )
    return value
