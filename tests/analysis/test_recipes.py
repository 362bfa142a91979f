"""What each loss trained with: sampler, head, lr, proxy lr multiplier, embedding size, and the
values departing from the published defaults or the shared protocol."""

from __future__ import annotations

from dmlstudy.analysis.recipes import departures, recipe, recipes
from dmlstudy.training.settings import TrainSettings


def _settings(**kw) -> dict:
    return TrainSettings(prepared_dir="p", out_dir="o", **kw).model_dump(mode="json")


def test_recipe_names_sampler_head_and_rates():
    proxy = _settings(
        loss="proxy_anchor",
        sampler="random",
        batch_size=120,
        lr=0.0003,
        embedding_dim=64,
        layer_norm=True,
        pooling="max",
        loss_params={"proxy_lr_multiplier": 100.0},
    )
    assert recipe(proxy) == {
        "sampler": "random (batch 120)",
        "head": "GMP pooling → LayerNorm",
        "lr": "0.0003",
        "proxy lr ×": "100",
        "embedding": "64",
        "backbone": "convnet4",
    }
    pair = recipe(_settings(loss="npair", m_per_class=2, batch_size=64))
    assert pair["sampler"] == "2 per class (batch 64)" and pair["proxy lr ×"] == "—"


def test_recipes_list_every_departure_per_loss():
    shared = {"lr": 0.001, "sampler": "m_per_class"}
    table = recipes(
        {
            "triplet": _settings(loss="triplet", lr=0.001, loss_params={"margin": 0.1}),
            "proxy_anchor": _settings(
                loss="proxy_anchor",
                lr=0.001,
                sampler="random",
                loss_params={"alpha": 32.0, "proxy_lr_multiplier": 10.0},
            ),
        },
        shared=shared,
    )
    col = "departs from the published / shared values"
    assert table.loc["triplet", col] == "none"
    assert table.loc["proxy_anchor", col] == (
        "proxy_lr_multiplier: 100 → 10; sampler: m_per_class → random"
    )
    assert not table.isna().any().any()


def test_departures_list_tuned_loss_values_and_loss_specific_training():

    run = {
        "loss_params": {},
        "pooling": "avg",
        "layer_norm": False,
        "crop_scale": [0.7, 1.0],
        "lr": 0.001,
    }
    protocol = {
        "crop_scale": (0.7, 1.0),
        "lr": 0.001,
    }  # pooling / layer_norm: TrainSettings defaults
    table = departures(
        {
            "triplet": {**run, "loss_params": {"margin": 0.1, "miner": "all"}},
            "proxy_anchor": {**run, "loss_params": {"alpha": 32.0, "proxy_lr_multiplier": 10.0}},
            "rsw": {**run, "layer_norm": True},
        },
        shared=protocol,
    )
    assert table.values.tolist() == [
        ["proxy_anchor", "loss", "proxy_lr_multiplier", 100.0, 10.0],
        ["rsw", "train", "layer_norm", False, True],
    ]
    # a single loss with its own head is still reported (compared with the protocol, not the others)
    assert departures({"rsw": {**run, "layer_norm": True}}, shared=protocol).values.tolist() == [
        ["rsw", "train", "layer_norm", False, True]
    ]
