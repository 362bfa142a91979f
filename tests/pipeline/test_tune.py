"""Validation-only tuning: grid parsing, and a tiny grid that trains, never touches test, reads
finished points back instead of retraining them, and replaces points made with other settings."""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import pytest
import yaml

from dmlstudy.pipeline.tune import grid_points, parse_grid, point_name, tune

REPO = Path(__file__).resolve().parents[2]


def test_parse_grid_reads_yaml_scalars_and_names_bad_specs():
    assert parse_grid(["proxy_lr_multiplier=1,1e2", "train.layer_norm=true"]) == {
        "proxy_lr_multiplier": [1, 100.0],
        "train.layer_norm": [True],
    }
    with pytest.raises(ValueError, match="KEY=V1,V2"):
        parse_grid(["margin"])


def test_grid_points_are_the_cartesian_product_in_given_order():
    points = grid_points({"a": [1, 2], "b": ["x", "y"]})
    assert points == [
        {"a": 1, "b": "x"},
        {"a": 1, "b": "y"},
        {"a": 2, "b": "x"},
        {"a": 2, "b": "y"},
    ]
    assert point_name(points[1]) == "a=1,b=y" and point_name({}) == "defaults"


@pytest.mark.parametrize(
    "dataset,loss,grid,expected",
    [
        ("omniglott", "triplet", {}, "did you mean 'omniglot'"),
        ("omniglot", "tripplet", {}, "did you mean 'triplet'"),
        (
            "omniglot",
            "triplet",
            {"margn": [0.1]},
            "--grid triplet.margn: unknown key (did you mean 'margin'?)",
        ),
        ("omniglot", "triplet", {"train.pooling": ["mean"]}, "--grid train.pooling"),
    ],
)
def test_bad_grid_fails_before_any_training(tmp_path, dataset, loss, grid, expected):
    with pytest.raises(ValueError) as err:
        tune(
            REPO / "params.yaml",
            dataset,
            loss,
            grid,
            prepared_dir=tmp_path / "none",
            out_dir=tmp_path / "t",
        )
    assert expected in str(err.value)
    assert not (tmp_path / "t").exists()


def test_tune_trains_each_point_on_validation_only(tmp_path, caplog, tiny_prepared):
    prepared = tiny_prepared
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw = copy.deepcopy(raw)
    raw["study"]["profile"] = "tiny"
    raw["profiles"]["tiny"]["train"].update(
        batch_size=8, image_size=16, limit_eval=None, cpu_threads=1
    )
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(raw))
    grid = {"margin": [0.1, 0.3], "train.pooling": ["max"]}
    table = tune(
        params, "omniglot", "triplet", grid, prepared_dir=prepared, out_dir=tmp_path / "tuning"
    )
    assert len(table) == 2 and list(table["val map@r"]) == sorted(table["val map@r"], reverse=True)
    run = tmp_path / "tuning" / "omniglot" / "triplet" / "margin=0.3,train.pooling=max" / "seed0"
    metrics = json.loads((run / "metrics.json").read_text())
    assert "test" not in metrics and not (run / "embeddings_test.npz").exists()
    assert (
        metrics["settings"]["pooling"] == "max"
        and metrics["settings"]["loss_params"]["margin"] == 0.3
    )
    (
        run / "checkpoint.pt"
    ).unlink()  # a finished point is read back from metrics.json, not retrained
    again = tune(
        params, "omniglot", "triplet", grid, prepared_dir=prepared, out_dir=tmp_path / "tuning"
    )
    assert again.equals(table)
    # stale points are replaced, not reused (weight_decay: no loss's tuned values override it)
    raw["datasets"]["omniglot"]["train"]["weight_decay"] = 0.01
    params.write_text(yaml.safe_dump(raw))
    with caplog.at_level(logging.WARNING):
        edited = tune(
            params, "omniglot", "triplet", grid, prepared_dir=prepared, out_dir=tmp_path / "tuning"
        )
    lines = [r.getMessage() for r in caplog.records if "replacing" in r.getMessage()]
    assert len(lines) == 2 and all("weight_decay differ" in line for line in lines)
    assert json.loads((run / "metrics.json").read_text())["settings"]["weight_decay"] == 0.01
    assert not edited.equals(table)
