"""params.yaml ↔ dmlstudy.config: the shipped file is valid, loss sections mirror the
constructors, and bad values fail naming the key and the valid choices."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from dmlstudy.config import (
    ABLATIONS,
    COARSE_DATASETS,
    DATASETS,
    ParamsError,
    config_from_dict,
    load_config,
    split_loss_section,
)
from dmlstudy.losses import list_losses, loss_hyperparameters

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def test_shipped_params_are_valid_the_paper_study_has_every_loss_and_ablation(raw):
    """The quick default trains a few losses on one seed and no ablation (its 40 minutes); the
    paper-grade study every registered loss and every ablation; checks cover both."""
    config = load_config(REPO / "params.yaml")
    assert config.study.datasets == ["omniglot"]
    assert config.study.profile == "full"
    assert set(config.study.losses) < set(list_losses())
    assert (config.study.ablations, config.study.multimodal) == ([], [])
    paper = config.for_profile("paper")
    assert sorted(paper.study.losses) == list_losses()  # every registered loss
    assert sorted(paper.study.ablations) == sorted(ABLATIONS)
    assert config.everything().study.losses[: len(config.study.losses)] == config.study.losses
    assert sorted(config.everything().study.losses) == list_losses()
    assert set(config.datasets) == set(DATASETS)
    assert set(config.ablations) == set(ABLATIONS)


def test_a_profile_names_its_own_losses_and_ablations(raw):
    """profiles.<name>.losses/ablations replace study's under that profile; unset, study's stay;
    a name without its section is refused, naming the key."""
    r = copy.deepcopy(raw)
    r["profiles"]["paper"]["losses"] = ["contrastive", "arcface"]
    r["profiles"]["paper"]["ablations"] = ["daal_parts"]
    config = config_from_dict(r)
    paper = config.for_profile("paper")
    assert paper.study.losses == ["contrastive", "arcface"]
    assert (paper.study.ablations, paper.study.profile) == (["daal_parts"], "paper")
    wide = config.for_profile("wide64")
    assert (wide.study.losses, wide.study.profile) == (config.study.losses, "wide64")
    assert config.everything().study.losses == [*config.study.losses, "contrastive"]
    with pytest.raises(ValueError, match=r"no profiles\.papr"):
        config.for_profile("papr")
    del r["losses"]["contrastive"]
    r["study"]["losses"] = [x for x in r["study"]["losses"] if x != "contrastive"]
    with pytest.raises(ValueError, match=r"profiles\.paper\.losses lists 'contrastive' but params"):
        config_from_dict(r)
    r = copy.deepcopy(raw)
    r["profiles"]["paper"]["losses"] = ["contrastiv"]
    with pytest.raises(ValueError, match="did you mean 'contrastive'"):
        config_from_dict(r)
    r = copy.deepcopy(raw)
    del r["profiles"]["paper"]["ablations"]  # dvc.yaml reads it: refused before DVC fails
    with pytest.raises(ValueError, match=r"profiles\.paper needs `losses` and `ablations`"):
        config_from_dict(r)


def _norm(v):
    return list(v) if isinstance(v, tuple) else v


@pytest.mark.parametrize("name", list_losses())
def test_loss_section_equals_constructor_keywords_and_defaults(raw, name):
    """The published defaults stay the defaults: what is tuned lives under per_dataset only."""
    defaults = {k: _norm(v) for k, v in loss_hyperparameters(name).items()}
    assert split_loss_section(raw["losses"][name])[0] == defaults


def test_photo_presets_follow_published_protocol(raw):
    for d in ("cub200", "cars196", "sop", "inshop"):
        t = raw["datasets"][d]["train"]
        assert (t["backbone"], t["pretrained"], t["embedding_dim"], t["image_size"]) == (
            "resnet50",
            True,
            512,
            224,
        )


BAD = [
    (("study", "losses"), ["triplet", "tripplet"], "study.losses", "did you mean 'triplet'"),
    (("study", "datasets"), ["cub"], "study.datasets", "Valid choices: omniglot, cub200"),
    (("study", "seeds"), [], "study.seeds", "must not be empty"),
    (("study", "seds"), [0], "study", "did you mean 'seeds'"),
    (
        ("losses", "proxy_anchor", "alpah"),
        32.0,
        "losses.proxy_anchor.alpah",
        "did you mean 'alpha'",
    ),
    (("losses", "proxy_anchor", "alpha"), "big", "losses.proxy_anchor.alpha", "valid number"),
    (("datasets", "omniglot", "train", "epochs"), 2.5, "datasets.omniglot.train.epochs", "integer"),
    (("datasets", "omniglot", "train", "lr"), -1.0, "datasets.omniglot.train.lr", "greater than 0"),
    (("train", "optimiser"), "adam", "train.optimiser", "did you mean 'optimizer'"),
    (("study", "ablations"), ["dall_parts"], "study.ablations", "did you mean 'daal_parts'"),
    (
        ("losses", "rsw", "train", "pooling"),
        "mean",
        "losses.rsw.train.pooling",
        "'avg', 'max' or 'avgmax'",
    ),
    (
        ("losses", "rsw", "per_dataset", "omniglott"),
        {},
        "losses.rsw.per_dataset",
        "did you mean 'omniglot'",
    ),
    (("losses", "rsw", "train"), True, "losses.rsw.train", "must be a mapping"),
    (("losses", "rsw", "per_dataset"), ["omniglot"], "losses.rsw.per_dataset", "must be a mapping"),
    (
        ("losses", "rsw", "per_dataset", "omniglot", "train"),
        5,
        "losses.rsw.per_dataset.omniglot.train",
        "must be a mapping",
    ),
    (("train", "evaluate_test"), False, "train.evaluate_test", "unknown key"),
    (
        ("ablations", "rsw_warp", "loss_params", "phase2_epoch"),
        0,
        "ablations.rsw_warp.loss_params.phase2_epoch",
        "did you mean 'phase2_epochs'",
    ),
    (
        ("multimodal", "loss_params", "rsw", "alfa"),
        1.0,
        "multimodal.loss_params.rsw.alfa",
        "did you mean 'alpha'",
    ),
    (
        ("losses", "rsw", "per_dataset", "omniglot", "alfa"),
        1.0,
        "losses.rsw.per_dataset.omniglot.alfa",
        "did you mean 'alpha'",
    ),
    (
        ("losses", "rsw", "per_dataset", "omniglot", "train", "epoch"),
        1,
        "losses.rsw.per_dataset.omniglot.train.epoch",
        "did you mean 'epochs'",
    ),
    # numbers and booleans are strict: a quoted value is an error naming the key, not coerced
    (
        ("datasets", "omniglot", "train", "lr"),
        "0.001",
        "datasets.omniglot.train.lr",
        "'0.001' is quoted: write 0.001 without quotes",
    ),
    (("losses", "proxy_anchor", "alpha"), "32", "losses.proxy_anchor.alpha", "without quotes"),
    (("losses", "triplet", "margin"), "0.1", "losses.triplet.margin", "write 0.1 without quotes"),
    (("study", "seeds"), ["0"], "study.seeds.0", "write 0 without quotes"),
    (
        ("datasets", "omniglot", "prepare", "image_size"),
        "28",
        "datasets.omniglot.prepare.image_size",
        "write 28 without quotes",
    ),
    (("train", "deterministic"), "true", "train.deterministic", "write true without quotes"),
    (("datasets", "omniglot", "train", "hflip"), 1, "datasets.omniglot.train.hflip", "a number"),
    (
        ("datasets", "omniglot", "train", "epochs"),
        True,
        "datasets.omniglot.train.epochs",
        "boolean",
    ),
    (
        ("profiles", "tiny", "prepare", "max_classes_per_split"),
        "40",
        "profiles.tiny.prepare.max_classes_per_split",
        "write 40 without quotes",
    ),
    (
        ("datasets", "omniglot", "train", "crop_scale"),
        [0.7, "1.0"],
        "datasets.omniglot.train.crop_scale",
        "write 1.0 without quotes",
    ),
    (
        ("losses", "direction", "base_params"),
        {"margn": 0.2},
        "losses.direction.base_params.margn",
        "did you mean 'margin'",
    ),
    (
        ("losses", "direction", "base_params"),
        {"margin": "wide"},
        "losses.direction.base_params.margin",
        "valid number",
    ),
    (("losses", "direction", "base"), "tripplet", "losses.direction.base", "'triplet'"),
    (
        ("losses", "language", "base"),
        "multi_similarty",
        "losses.language.base",
        "did you mean 'multi_similarity'",
    ),
    (("losses", "language", "base_params"), [1], "losses.language.base_params", "dictionary"),
    # non-finite numbers (.nan / .inf) in any section: rejected naming the key
    (("losses", "arcface", "scale"), float("nan"), "losses.arcface.scale", "non-finite"),
    (("losses", "triplet", "margin"), float("inf"), "losses.triplet.margin", "non-finite"),
    (("datasets", "omniglot", "train", "lr"), float("inf"), "datasets.omniglot.train.lr", "finite"),
    (("train", "weight_decay"), float("inf"), "train.weight_decay", "non-finite"),
    (("train", "grad_clip"), float("inf"), "train.grad_clip", "non-finite"),
    # magnitudes no loss can train with (each loss's hyperparameter_ranges)
    (
        ("losses", "contrastive", "neg_margin"),
        1e30,
        "losses.contrastive.neg_margin",
        "1e+30 is outside [-2, 2]",
    ),
    (("losses", "arcface", "scale"), 1e30, "losses.arcface.scale", "outside (0, 10000]"),
    (("losses", "proxy_nca", "softmax_scale"), 1e30, "losses.proxy_nca.softmax_scale", "outside"),
    (("losses", "rsw", "temperature"), 0.0, "losses.rsw.temperature", "0 is outside (0, 10000]"),
    (
        ("losses", "rsw", "per_dataset", "omniglot", "temperature"),
        0.0,
        "losses.rsw.per_dataset.omniglot.temperature",
        "cannot train",
    ),
    # suggestions: a loss section's own keys, and names spelling distance cannot find
    (("losses", "contrastive", "trian"), {}, "losses.contrastive.trian", "did you mean 'train'"),
    (("losses", "contrastive", "per_datset"), {}, "losses.contrastive", "neg_margin, train, per"),
    (("train", "learning_rate"), 0.1, "train.learning_rate", "did you mean 'lr'"),
]


@pytest.mark.parametrize("path,value,key,expected", BAD, ids=[b[2] + ":" + str(b[1]) for b in BAD])
def test_bad_params_name_the_key_and_choices(raw, path, value, key, expected):
    bad = copy.deepcopy(raw)
    node = bad
    for p in path[:-1]:
        node = node.setdefault(p, {})
    node[path[-1]] = value
    with pytest.raises(ParamsError) as err:
        config_from_dict(bad)
    assert key in str(err.value) and expected in str(err.value), str(err.value)


def test_loss_params_merge_dataset_and_profile_overrides(raw):
    raw = copy.deepcopy(raw)
    raw["losses"]["rsw"]["per_dataset"] = {"omniglot": {"phase2_epochs": 0}}
    config = config_from_dict(raw)
    assert config.loss_params("omniglot", "rsw")["phase2_epochs"] == 0
    assert config.loss_params("omniglot", "rsw", tuned=False)["phase2_epochs"] == 30
    assert config.loss_params("cub200", "rsw")["phase2_epochs"] == 30
    assert "per_dataset" not in config.loss_params("omniglot", "rsw")
    assert "train" not in config.loss_params("omniglot", "rsw")
    tiny = copy.deepcopy(raw)
    tiny["study"]["profile"] = "tiny"
    assert config_from_dict(tiny).loss_params("cub200", "rsw")["phase2_epochs"] == 0
    assert config_from_dict(tiny).prepare_settings("omniglot").max_classes_per_split == 40


def test_loss_train_settings_sit_between_dataset_protocol_and_profile(raw):
    """RSW's head (losses.rsw.train) reaches its runs on every dataset, a per-dataset train value
    overrides it, and the tiny profile's budget still wins; other losses are untouched."""
    from dmlstudy.study.runs import train_settings

    r = copy.deepcopy(raw)
    r["losses"]["rsw"]["train"] = {"layer_norm": True, "pooling": "avgmax", "epochs": 7}
    r["losses"]["rsw"]["per_dataset"] = {"omniglot": {"train": {"pooling": "max"}}}
    config = config_from_dict(r)
    omni = train_settings(config, "omniglot", "rsw", 0, prepared_dir=".", out_dir=".")
    cub = train_settings(config, "cub200", "rsw", 0, prepared_dir=".", out_dir=".")
    other = train_settings(config, "omniglot", "triplet", 0, prepared_dir=".", out_dir=".")
    assert (omni.layer_norm, omni.pooling, omni.epochs) == (True, "max", 7)
    assert (cub.layer_norm, cub.pooling, cub.backbone) == (True, "avgmax", "resnet50")
    assert (other.layer_norm, other.pooling) == (False, "avg")
    r["study"]["profile"] = "tiny"
    assert (
        train_settings(
            config_from_dict(r), "omniglot", "rsw", 0, prepared_dir=".", out_dir="."
        ).epochs
        == 2
    )


def test_data_dir_env_overrides_params(raw, monkeypatch):
    config = config_from_dict(raw)
    monkeypatch.setenv("DMLSTUDY_DATA_DIR", "/somewhere")
    assert config.data_dir() == Path("/somewhere")
    monkeypatch.delenv("DMLSTUDY_DATA_DIR")
    assert config.data_dir() == Path(raw["data"]["dir"])


@pytest.mark.parametrize("dataset", DATASETS)
def test_every_dataset_runs_under_each_profile(raw, dataset):
    """Switching datasets works with the default ablations and multi-modal experiment, under both
    profiles: the tiny profile (tests/CI) must give valid runs on every preset, photo datasets
    included (their warm-up epoch must not consume the tiny profile's single epoch), and the
    short ablation/multi-modal budgets must fit RSW's two phases on the photo presets."""
    from dmlstudy.study.check_params import check_runs
    from dmlstudy.study.runs import ablation_variants

    for profile in ("full", "tiny"):
        r = copy.deepcopy(raw)
        r["study"].update(
            datasets=[dataset],
            profile=profile,
            multimodal=[dataset] if dataset in COARSE_DATASETS else [],
        )
        config = config_from_dict(r)
        variants = sum(len(ablation_variants(config, a)) for a in config.study.ablations)
        coarse = len(r["study"]["losses"]) if dataset in COARSE_DATASETS else 0
        assert check_runs(config) == (len(r["study"]["losses"]) + variants + coarse) * len(
            r["study"]["seeds"]
        )


def test_every_section_runs_with_the_paper_studys_losses_and_ablations(raw):
    """The shipped params render every report section when the default study takes the paper
    study's losses and ablations and the multi-modal experiment: every registered loss, every
    ablation arm, one coarse-label run per loss on Omniglot; the quick default counts its own."""
    from dmlstudy.study.check_params import check_runs
    from dmlstudy.study.runs import ablation_variants

    r = copy.deepcopy(raw)
    paper = r["profiles"]["paper"]
    r["study"].update(losses=paper["losses"], ablations=paper["ablations"], multimodal=["omniglot"])
    config = config_from_dict(r)
    assert set(config.study.ablations) == set(ABLATIONS)
    variants = sum(len(ablation_variants(config, a)) for a in config.study.ablations)
    losses = len(list_losses())
    assert check_runs(config) == losses + variants + losses
    assert check_runs(config_from_dict(raw)) == len(raw["study"]["losses"])


def test_multimodal_needs_a_dataset_with_coarse_labels(raw):
    r = copy.deepcopy(raw)
    r["study"].update(datasets=["cub200"], multimodal=["cub200"])
    with pytest.raises(
        ParamsError, match=r"study\.multimodal.*Valid choices: omniglot, cars196, sop, inshop"
    ):
        config_from_dict(r)


def test_nested_base_params_of_an_override_are_checked_before_any_run(raw):
    """A per-dataset ``base_params`` override (no ``base`` beside it) is checked with the merged
    settings: the run's loss is built by check_runs and names the bad key."""
    from dmlstudy.study.check_params import check_runs

    r = copy.deepcopy(raw)
    r["study"].update(ablations=[], multimodal=[])
    r["losses"]["direction"]["base"] = "multi_similarity"
    r["losses"]["direction"]["per_dataset"] = {"omniglot": {"base_params": {"betta": 40.0}}}
    config = config_from_dict(r)
    assert config.loss_params("omniglot", "direction")["base_params"] == {"betta": 40.0}
    with pytest.raises(ParamsError, match=r"losses\.direction.*'betta' \(did you mean 'beta'\?\)"):
        check_runs(config)


def test_public_names_resolve_and_suggest_stays_light():
    """Every exported name resolves lazily; the registry's "did you mean" import does not load
    the schema (pydantic, the data layer) into a process."""
    import subprocess
    import sys

    import dmlstudy.config as config

    assert all(getattr(config, name) is not None for name in config.__all__)
    code = (
        "import sys, dmlstudy.config.suggest; "
        "print('pydantic' in sys.modules, 'dmlstudy.data' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_numbers_read_as_yaml_1_2_so_1e_3_is_a_number(raw, tmp_path):
    """``lr: 1e-3`` is 0.001 (YAML 1.2, as DVC writes and reads it), not the string '1e-3' that
    PyYAML's YAML 1.1 gives and that was rejected with "is quoted: write 1e-3 without quotes";
    a value really quoted stays an error."""
    text = yaml.safe_dump(raw, sort_keys=False)
    text = text.replace("lr: 0.001\n", "lr: 1e-3\n", 1)
    assert "lr: 1e-3" in text and yaml.safe_load("lr: 1e-3")["lr"] == "1e-3"  # YAML 1.1
    path = tmp_path / "params.yaml"
    path.write_text(text)
    assert load_config(path).datasets["omniglot"].train["lr"] == 0.001
    path.write_text(text.replace("lr: 1e-3", "lr: '1e-3'", 1))
    with pytest.raises(ParamsError, match=r"datasets.omniglot.train.lr: '1e-3' is quoted"):
        load_config(path)
    path.write_text(text.replace("lr: 1e-3", "lr: .inf", 1))
    with pytest.raises(ParamsError, match=r"non-finite.*datasets.omniglot.train.lr"):
        load_config(path)


def test_every_loss_published_and_tuned_values_are_inside_its_ranges(raw):
    """The ranges reject only what cannot train: every published, tuned and searched value of
    every loss is inside them (a range too tight would refuse the study's own params)."""
    from dmlstudy.losses.base import check_ranges

    config = config_from_dict(copy.deepcopy(raw))
    for name in list_losses():
        assert check_ranges(name, loss_hyperparameters(name)) == {}, name
        for d in config.study.datasets:
            assert check_ranges(name, config.loss_params(d, name)) == {}, name
        for key, spec in (raw["tuning"]["space"].get(name) or {}).items():
            for bound in next(iter(spec.values())):
                if not isinstance(bound, str | bool):
                    assert check_ranges(name, {key: bound}) == {}, (name, key, bound)


def test_every_profile_readme_documents_loads_and_builds_its_runs(raw):
    """README documents `profile: paper` as a one-edit switch; it was refused ("Input should be
    'full' or 'tiny'"). Every profile README names loads, and check_params builds its runs."""
    import re

    from dmlstudy.study.check_params import check_runs

    readme = (REPO / "README.md").read_text()
    documented = set(re.findall(r"profile: (\w+)", readme))
    assert "paper" in documented
    assert documented <= {"full", *raw["profiles"]}, documented
    for profile in sorted(documented):
        bad = copy.deepcopy(raw)
        bad["study"]["profile"] = profile
        config = config_from_dict(bad)
        assert config.study.profile == profile
        assert check_runs(config, prepared_root=None) > 0
    bad = copy.deepcopy(raw)
    bad["study"]["profile"] = "papr"
    with pytest.raises(ParamsError, match=r"profiles.papr \(did you mean 'paper'\?\)"):
        config_from_dict(bad)
