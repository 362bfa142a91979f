"""``make exps``: the experiments of ``dvc exp run -S …`` as a table a terminal can show.

``dvc exp show`` puts every params.yaml key, every metric of every loss and every dependency's
hash in its columns (385 of them for the default study, each cell "…" at 120 columns). This reads
the same rows through DVC's API (``dvc.api.exp_show``) and transposes what differs: one column per
experiment, one row per params.yaml key that differs between the experiments and per metric
(``--metric``, default MAP@R) of each loss that differs, loss names for metric names.
``dvc exp show --only-changed --drop '…'`` stays the full view (README).

>>> a, b = "results/omniglot/metrics/a.json:map@r", "results/omniglot/metrics/b.json:map@r"
>>> rows = [
...     {"Experiment": None, "rev": "workspace", "losses.a.m": 0.1, "losses.b.m": 1,
...      a: 40.0, b: 30.0, "dmlstudy/losses": "9f2e"},
...     {"Experiment": "tuned-a", "rev": "1a2b3c4", "losses.a.m": 0.3, "losses.b.m": 1,
...      a: 42.5, b: 30.0, "dmlstudy/losses": "9f2e"},
... ]
>>> experiments_table(rows, params={"losses.a.m", "losses.b.m"})
                  workspace  tuned-a
losses.a.m              0.1      0.3
map@r omniglot/a       40.0     42.5
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from dmlstudy.config import read_params

_METRIC = re.compile(r"^results/(?P<dataset>[^/]+)/metrics/(?P<loss>[^/]+)\.json:(?P<metric>.+)$")


def flat_keys(tree: Any, prefix: str = "") -> set[str]:
    """Every key path of a params mapping, leaves and inner keys (``a``, ``a.b``).

    >>> sorted(flat_keys({"a": {"b": 1}, "c": [1]}))
    ['a', 'a.b', 'c']
    """
    if not isinstance(tree, dict):
        return set()
    out: set[str] = set()
    for key, value in tree.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        out |= {path} | flat_keys(value, path)
    return out


def experiments_table(
    rows: list[dict[str, Any]], params: Iterable[str], metric: str = "map@r", all_rows: bool = False
) -> pd.DataFrame:
    """Experiments (columns) × the ``params`` keys and per-loss ``metric`` values (rows) that
    differ between them (all of them with ``all_rows``); dependency hashes are left out."""
    params = set(params)
    names = [r.get("Experiment") or r.get("rev") or "?" for r in rows]
    table: dict[str, list[Any]] = {}
    for key in rows[0] if rows else []:
        m = _METRIC.match(key)
        if m and m["metric"] == metric:
            label = f"{metric} {m['dataset']}/{m['loss']}"
        elif key in params:
            label = key
        else:
            continue
        values = [r.get(key) for r in rows]
        if all_rows or len({repr(v) for v in values}) > 1:
            table[label] = values
    frame = pd.DataFrame(table, index=names).T
    return frame.sort_index(key=lambda idx: idx.str.startswith(f"{metric} "), kind="stable")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    ap.add_argument("--metric", default="map@r", help="metric of each loss (default map@r)")
    ap.add_argument("--all", action="store_true", help="every row, not only those that differ")
    ap.add_argument("--repo", default=".", help="the study's repository (default .)")
    a = ap.parse_args(argv)
    import dvc.api

    rows = dvc.api.exp_show(repo=a.repo)
    params = flat_keys(read_params((Path(a.repo) / "params.yaml").read_text()))
    table = experiments_table(rows, params, a.metric, a.all)
    if table.empty:
        print("no params or metrics differ between the experiments (--all shows them all)")
        return 0
    with pd.option_context("display.max_rows", None, "display.width", 120):
        print(table.astype(object).where(table.notna(), "—").astype(str).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
