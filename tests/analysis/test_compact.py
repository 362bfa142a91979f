"""Compact run folders (analysis/compact.py): what a fresh clone recomputes the tables from."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dmlstudy.analysis import compact
from dmlstudy.analysis.compare import compare, per_query
from dmlstudy.analysis.results import recall_curves
from dmlstudy.training import train
from dmlstudy.training.fingerprint import run_inputs


@pytest.fixture(scope="module")
def runs(make_settings, tmp_path_factory):
    """Two losses × one seed of real tiny trainings, and their compact folders."""
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for loss in ("contrastive", "arcface"):
        s = make_settings(root / "full" / loss / "seed0", loss=loss, epochs=2)
        train(s)
        out[loss] = (s, compact.export(s.out_dir, root / "compact" / loss / "seed0"))
    return root, out


def test_a_compact_folder_reads_as_its_run_folder(runs):
    root, out = runs
    for s, dest in out.values():
        assert sorted(p.name for p in dest.iterdir()) == sorted(compact.COMPACT_FILES)
        for level in ("fine", "coarse"):
            full, small = per_query(s.out_dir, level), per_query(dest, level)
            assert np.array_equal(full["labels"], small["labels"])
            for m in compact.PER_QUERY_METRICS:
                np.testing.assert_allclose(small[m], full[m], rtol=0, atol=1e-6)
    losses = list(out)
    ks = (1, 2, 4, 8, 16)  # 24 test images: no 32 neighbours
    a = recall_curves(root / "full", losses, [0], ks)
    b = recall_curves(root / "compact", losses, [0], ks)
    with pytest.raises(ValueError, match="no recall@K for K = \\[32\\]"):
        recall_curves(root / "compact", losses, [0])
    pd.testing.assert_frame_equal(a, b)
    ta = compare({x: [root / "full" / x / "seed0"] for x in losses})
    tb = compare({x: [root / "compact" / x / "seed0"] for x in losses})
    cols = ["method", "metric", "mean", "ci_low", "ci_high", "diff", "p"]
    pd.testing.assert_frame_equal(ta[cols], tb[cols], atol=1e-6)


def test_is_current_only_for_the_same_run(runs):
    _, out = runs
    s, dest = out["contrastive"]
    inputs = run_inputs(s.prepared_dir, s.loss, s.loss_params)
    assert compact.is_current(dest, s, inputs)
    assert compact.is_current(dest, s.model_copy(update={"out_dir": dest}), inputs)  # paths aside
    assert not compact.is_current(dest, s.model_copy(update={"lr": s.lr * 2}), inputs)
    assert not compact.is_current(dest, s, {**inputs, "code": "0" * 16})
    (dest / compact.PER_QUERY_FILE).rename(dest / "moved")
    try:
        assert not compact.is_current(dest, s, inputs)  # incomplete
    finally:
        (dest / "moved").rename(dest / compact.PER_QUERY_FILE)


def test_export_refuses_a_run_without_test_metrics(make_settings, tmp_path):
    s = make_settings(tmp_path / "run", epochs=1, evaluate_test=False)
    train(s)
    with pytest.raises(ValueError, match="evaluate_test"):
        compact.export(s.out_dir, tmp_path / "compact")
    assert not (tmp_path / "compact").exists()
    metrics = json.loads((s.out_dir / "metrics.json").read_text())
    assert "test" not in metrics
