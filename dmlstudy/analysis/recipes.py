"""What each loss trained with: its sampler, head, learning rates and embedding size, and every
value that departs from the published defaults or from the dataset's shared protocol.

Read from the runs' own ``metrics.json["settings"]`` (what ran, not what params.yaml says now).

>>> s = {"sampler": "m_per_class", "m_per_class": 4, "batch_size": 128, "pooling": "avgmax",
...      "layer_norm": True, "lr": 0.001, "embedding_dim": 32, "backbone": "convnet4_050",
...      "loss_params": {"proxy_lr_multiplier": 100.0}}
>>> recipe(s)["sampler"], recipe(s)["head"], recipe(s)["proxy lr ×"]
('4 per class (batch 128)', 'GAP+GMP pooling → LayerNorm', '100')
"""

from __future__ import annotations

from typing import Any

import pandas as pd

POOLING = {"avg": "GAP", "max": "GMP", "avgmax": "GAP+GMP"}


def recipe(settings: dict[str, Any]) -> dict[str, str]:
    """Sampler, head, lr, proxy lr multiplier, embedding size and backbone of one run."""
    s = settings
    sampler = (
        f"random (batch {s['batch_size']})"
        if s.get("sampler") == "random"
        else f"{s['m_per_class']} per class (batch {s['batch_size']})"
    )
    head = f"{POOLING.get(s.get('pooling', 'avg'), s.get('pooling'))} pooling"
    if s.get("layer_norm"):
        head += " → LayerNorm"
    mult = s.get("loss_params", {}).get("proxy_lr_multiplier")
    return {
        "sampler": sampler,
        "head": head,
        "lr": f"{s['lr']:g}",
        "proxy lr ×": "—" if mult is None else f"{mult:g}",
        "embedding": str(s["embedding_dim"]),
        "backbone": str(s["backbone"]),
    }


def recipes(settings: dict[str, dict[str, Any]], shared: dict[str, Any]) -> pd.DataFrame:
    """One row per loss (``settings``: loss → its run's settings): :func:`recipe` plus a column
    listing every :func:`departures` entry as ``key: published/shared → used``."""
    dep = departures(settings, shared)
    rows = {}
    for loss, s in settings.items():
        mine = dep[dep["loss"] == loss]
        rows[loss] = {
            **recipe(s),
            "departs from the published / shared values": "; ".join(
                f"{r['setting']}: {_fmt(r['published / shared'])} → {_fmt(r['used'])}"
                for _, r in mine.iterrows()
            )
            or "none",
        }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "loss"
    return table


def _fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def departures(settings: dict[str, dict[str, Any]], shared: dict[str, Any]) -> pd.DataFrame:
    """What each loss ran with beyond the shared protocol: loss hyper-parameters that differ from
    the published defaults (``dmlstudy.losses.loss_hyperparameters``) and training settings that
    differ from ``shared`` (the dataset's protocol, ``runs.train_overrides(config, dataset)``; a
    key it lacks is compared with the TrainSettings default). ``settings`` maps loss → its run's
    ``metrics.json["settings"]``.

    >>> base = {"loss_params": {"margin": 0.1, "miner": "all"}, "pooling": "avg", "lr": 0.001}
    >>> departures({"triplet": base,
    ...             "rsw": {**base, "loss_params": {"alpha": 28.4}, "pooling": "avgmax"}},
    ...            shared={"lr": 0.001}).values.tolist()
    [['rsw', 'train', 'pooling', 'avg', 'avgmax']]
    """
    from dmlstudy.losses import loss_hyperparameters
    from dmlstudy.training.settings import TrainSettings

    ignored = {
        "loss",
        "loss_params",
        "out_dir",
        "prepared_dir",
        "seed",
        "label_level",
        "evaluate_test",
    }
    protocol = {k: f.default for k, f in TrainSettings.model_fields.items() if not f.is_required()}
    protocol.update(shared)
    rows = []
    for loss, s in settings.items():
        published = loss_hyperparameters(loss)
        for key, value in s["loss_params"].items():
            default = published.get(key)
            default = list(default) if isinstance(default, tuple) else default
            if value is not None and value != default:
                rows.append((loss, "loss", key, default, value))
        for key, value in s.items():
            if key in ignored or key not in protocol:
                continue
            expected = protocol[key]
            expected = list(expected) if isinstance(expected, tuple) else expected
            if value != expected:
                rows.append((loss, "train", key, expected, value))
    return pd.DataFrame(rows, columns=["loss", "kind", "setting", "published / shared", "used"])
