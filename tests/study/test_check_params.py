"""The first pipeline stage rejects bad params (including cross-field and loss-level errors) and
missing data, before any stage runs."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from dmlstudy.config import ParamsError, config_from_dict
from dmlstudy.data import DatasetNotFoundError, get_spec
from dmlstudy.study.check_params import MARKER, check_data, main

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def offline(monkeypatch):
    """No network: every connection fails (as on this project's machines)."""

    def refuse(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.fixture
def data_env(tmp_path, monkeypatch, shared_omniglot_dir):
    """The offline Omniglot archives as the data directory; an empty work directory."""
    monkeypatch.setenv("DMLSTUDY_DATA_DIR", str(shared_omniglot_dir.parent))
    monkeypatch.setenv("DMLSTUDY_WORK_DIR", str(tmp_path / "work"))


def _params(tmp_path: Path, **study) -> Path:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["study"].update(study)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_valid_params_write_the_constant_marker(tmp_path, data_env, offline):
    marker = tmp_path / "ok" / "params.ok"
    assert main([str(REPO / "params.yaml"), str(marker)]) == 0
    assert marker.read_text() == MARKER


def test_without_a_marker_path_it_only_checks(tmp_path, data_env, offline, capsys):
    assert main([str(REPO / "params.yaml")]) == 0
    assert "OK (" in capsys.readouterr().err and list(tmp_path.iterdir()) == []


def test_merged_settings_and_loss_schedule_errors_fail(tmp_path, capsys):
    text = (REPO / "params.yaml").read_text()
    bad = tmp_path / "params.yaml"
    # a fixed budget (cosine) of 20 epochs leaves no phase-1 epoch before RSW's last 30 (the
    # published phase 2, which the campaign's trial 0 trains; RSW's tuned values turn it off)
    fixed = text.replace("  schedule: plateau\n", "  schedule: cosine\n")
    fixed = fixed.replace("epochs: 100                 # a cap the plateau", "epochs: 20 #")
    assert fixed.count("epochs: 20 ") == 1 and "schedule: cosine" in fixed
    bad.write_text(fixed)
    assert main([str(bad), str(tmp_path / "ok")]) == 1
    err = capsys.readouterr().err
    assert "losses.rsw" in err and "set the rsw hyper-parameter phase2_epochs below" in err
    bad.write_text(
        text.replace(
            "      m_per_class: 4\n      lr: 0.001", "      m_per_class: 5\n      lr: 0.001"
        )
    )
    assert main([str(bad), str(tmp_path / "ok")]) == 1
    assert "multiple of m_per_class" in capsys.readouterr().err
    assert not (tmp_path / "ok").exists()


@pytest.mark.parametrize(
    "edit,expected",
    [
        (
            ("  losses: [contrastive", "  lossess: [contrastive"),
            "unknown key 'lossess' (did you mean 'losses'?)",
        ),
        (("lr: 0.001", 'lr: "0.001"'), "datasets.omniglot.train.lr: '0.001' is quoted"),
        (
            (
                "sweep: {train.embedding_dim: [8, 16, 32]}",
                'sweep: {train.embedding_dim: [8, "16", 32]}',
            ),
            "ablations.embedding_size.sweep.train.embedding_dim: '16' is quoted",
        ),
    ],
    ids=["misspelt-study-key", "quoted-lr", "quoted-sweep-value"],
)
def test_bad_values_fail_naming_the_key(tmp_path, capsys, edit, expected):
    old, new = edit
    text = (REPO / "params.yaml").read_text()
    assert old in text
    bad = tmp_path / "params.yaml"
    bad.write_text(text.replace(old, new, 1))
    assert main([str(bad), str(tmp_path / "ok")]) == 1
    err = capsys.readouterr().err
    assert expected in err, err
    assert not (tmp_path / "ok").exists()


def test_offline_missing_archives_are_each_named_with_url_and_place(
    tmp_path, monkeypatch, offline, capsys
):
    data = tmp_path / "data"
    monkeypatch.setenv("DMLSTUDY_DATA_DIR", str(data))
    monkeypatch.setenv("DMLSTUDY_WORK_DIR", str(tmp_path / "work"))
    params = _params(tmp_path, datasets=["omniglot", "cub200", "inshop"], multimodal=[])
    assert main([str(params), str(tmp_path / "ok")]) == 1
    err = capsys.readouterr().err
    for name in ("omniglot", "cub200", "inshop"):
        for rf in get_spec(name).files:
            line = next(ln for ln in err.splitlines() if ln.strip().startswith(rf.filename + ":"))
            assert rf.url in line and str(data / name / rf.filename) in line, line
    assert "offline: cannot reach raw.githubusercontent.com" in err
    assert "manual download only" in err  # inshop has no public checksum
    assert err.rstrip().endswith("overrides it)") and not (tmp_path / "ok").exists()


def test_archives_found_locally_or_downloaded_before_pass(tmp_path, monkeypatch, offline):
    """Data dir or earlier download (work dir): no network needed; partial data names only what
    is missing."""
    monkeypatch.setenv("DMLSTUDY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DMLSTUDY_WORK_DIR", str(tmp_path / "work"))
    config = config_from_dict(yaml.safe_load(_params(tmp_path, multimodal=[]).read_text()))
    first, second = get_spec("omniglot").files
    (tmp_path / "data" / "omniglot").mkdir(parents=True)
    (tmp_path / "data" / "omniglot" / first.filename).write_bytes(b"x")
    with pytest.raises(DatasetNotFoundError) as err:
        check_data(config)
    assert second.filename in str(err.value) and f"{first.filename}:" not in str(err.value)
    (tmp_path / "work" / "downloads" / "omniglot").mkdir(parents=True)
    (tmp_path / "work" / "downloads" / "omniglot" / second.filename).write_bytes(b"x")
    check_data(config)


def test_missing_archives_that_can_be_downloaded_pass(tmp_path, monkeypatch):
    monkeypatch.setenv("DMLSTUDY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DMLSTUDY_WORK_DIR", str(tmp_path / "work"))
    config = config_from_dict(yaml.safe_load(_params(tmp_path, multimodal=[]).read_text()))
    probed = []
    check_data(config, probe=lambda url: probed.append(url))  # the server answers
    assert len(probed) == 1  # one probe per host


def test_a_campaign_trial_the_settings_reject_names_the_trial(tmp_path, capsys):
    """A run or tuning trial whose merged TrainSettings are invalid is named with the keys behind
    it, not with pydantic's bare "1 validation error for TrainSettings" (which main() printed for
    a campaign trial)."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["losses"]["proxy_nca_pp"]["train"]["warmup_epochs"] = 110  # the cap is 100
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    assert main([str(path)]) == 1
    err = capsys.readouterr().err
    assert "1 validation error" not in err
    assert "warmup_epochs (110) must be < epochs (100)" in err
    assert "proxy_nca_pp" in err and "the merged training settings are invalid" in err


@pytest.mark.parametrize(
    ("loss", "dimension", "spec", "expected"),
    [
        (  # the loss constructor rejects the corner (issue #18 case 9)
            "daal",
            "prototype",
            {"choice": ["segment", "point"]},
            "'prototype': 'point'} under tuning.loss_params.daal: loss 'daal' rejects its "
            "settings: daal: prototype='point' has no segment",
        ),
        (  # TrainSettings rejects the corner
            "proxy_nca_pp",
            "train.warmup_epochs",
            {"choice": [5, 150]},
            "'train.warmup_epochs': 150} under tuning.loss_params.proxy_nca_pp: the merged "
            "training settings are invalid: settings: Value error, warmup_epochs (150) must be <",
        ),
    ],
)
def test_a_search_trial_only_the_campaign_reaches_names_the_trial_and_its_keys(
    tmp_path, capsys, loss, dimension, spec, expected
):
    """Issue #18 case 9: a loss-constructor error reached through a tuning trial named only
    "tuning search trial 0"; a trial the study's runs never build (a corner of the search space)
    is named by the space key, its point and tuning.loss_params, before any compute."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["tuning"]["space"][loss][dimension] = spec
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    assert main([str(path)]) == 1
    err = capsys.readouterr().err
    assert "1 validation error" not in err and "tuning search trial" not in err
    assert f"tuning search of {loss}: the high corner of tuning.space.{loss} {{" in err, err
    assert expected in err, err


# --- no unfair comparison by accident (issue #17): a study loss needs a search space, and tuned
# values where its rivals have them unless study.untuned says it is to be tuned first.

NEW = "norm_softmax"


@pytest.fixture
def new_loss(monkeypatch):
    """A loss registered under a new name (ArcFace's class), not yet in params.yaml."""
    from dmlstudy.losses import base, get_loss_class

    monkeypatch.setitem(base._REGISTRY, NEW, get_loss_class("arcface"))


def _with_new_loss(tmp_path: Path, *, space=True, tuned=False, untuned=()) -> Path:
    """params.yaml with NEW beside ArcFace in a small study (no ablations, no multi-modal)."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["study"].update(losses=["arcface", NEW], ablations=[], multimodal=[])
    if untuned:
        raw["study"]["untuned"] = list(untuned)
    raw["losses"][NEW] = {"scale": 16.0, "train": {"layer_norm": True}}
    if tuned:
        raw["losses"][NEW]["per_dataset"] = {"omniglot": {"scale": 20.0}}
    if space:
        raw["tuning"]["space"][NEW] = {"scale": {"log": [8.0, 64.0]}}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_a_study_loss_without_a_tuning_space_is_refused_naming_the_fix(
    tmp_path, new_loss, data_env, offline, capsys
):
    assert main([str(_with_new_loss(tmp_path, space=False, untuned=[NEW]))]) == 1
    err = capsys.readouterr().err
    assert f"tuning.space has no {NEW} entry" in err and f"Add tuning.space.{NEW}" in err
    assert "python -m dmlstudy.study.campaign params.yaml" in err
    assert f"--loss {NEW}" in err


def test_a_study_loss_without_tuned_values_beside_tuned_rivals_is_refused(
    tmp_path, new_loss, data_env, offline, capsys
):
    assert main([str(_with_new_loss(tmp_path))]) == 1
    err = capsys.readouterr().err
    assert f"losses.{NEW} has no tuned values for omniglot" in err
    assert f"losses.{NEW}.per_dataset.omniglot" in err and "while arcface, " in err
    assert "have them" in err
    assert f"--loss {NEW}" in err and f"add {NEW} to study.untuned" in err


def test_study_untuned_lets_it_train_untuned_with_a_warning(
    tmp_path, new_loss, data_env, offline, capsys
):
    assert main([str(_with_new_loss(tmp_path, untuned=[NEW]))]) == 0
    err = capsys.readouterr().err
    assert f"WARNING: {NEW} trains untuned on omniglot (study.untuned)" in err
    assert "OK (" in err


def test_tuned_values_pass_and_a_stale_untuned_entry_is_refused(tmp_path, new_loss, capsys):
    from dmlstudy.study.check_params import check_tuning_coverage

    path = _with_new_loss(tmp_path, tuned=True)
    assert check_tuning_coverage(config_from_dict(yaml.safe_load(path.read_text()))) == []
    assert main([str(_with_new_loss(tmp_path, tuned=True, untuned=[NEW]))]) == 1
    assert f"study.untuned lists {NEW!r}" in capsys.readouterr().err


def test_an_empty_tuned_entry_counts_as_tuned_a_missing_one_does_not():
    """proxy_anchor's campaign kept the published values: ``per_dataset: {omniglot: {}}``."""
    from dmlstudy.config import ParamsError
    from dmlstudy.study.check_params import check_tuning_coverage

    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    assert raw["losses"]["proxy_anchor"]["per_dataset"] == {"omniglot": {}}
    assert check_tuning_coverage(config_from_dict(raw)) == []
    del raw["losses"]["proxy_anchor"]["per_dataset"]
    with pytest.raises(ParamsError, match=r"losses\.proxy_anchor has no tuned values"):
        check_tuning_coverage(config_from_dict(raw))


def test_study_untuned_must_be_study_losses():
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["study"].update(losses=["arcface"], untuned=["cosface"])
    raw["profiles"]["paper"]["losses"] = ["arcface", "npair"]
    with pytest.raises(ValueError, match=r"study\.untuned lists 'cosface', which neither"):
        config_from_dict(raw)
    raw["study"]["untuned"] = ["npair"]  # the paper-grade study trains it
    assert config_from_dict(raw).study.untuned == ["npair"]


def _photo_raw(**train) -> dict:
    """params.yaml with CUB-200-2011 as the only study dataset (its ImageNet-pretrained
    ResNet-50), one loss, its training section updated with ``train``."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["study"].update(datasets=["cub200"], losses=["multi_similarity"], ablations=[])
    raw["study"]["multimodal"] = []
    raw["datasets"]["cub200"]["train"].update(train)
    return raw


def test_pretrained_weights_offline_and_not_cached_fail_naming_both_ways(
    tmp_path, monkeypatch, offline, capsys
):
    """HF_HUB_OFFLINE (the Makefile's) and an empty hub cache: the first stage fails before any
    compute, naming the model and the two ways to provide its weights (it failed at training,
    in timm's download)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(_photo_raw(), sort_keys=False))
    assert main([str(path), str(tmp_path / "ok")]) == 1 and not (tmp_path / "ok").exists()
    err = capsys.readouterr().err
    assert (
        "datasets.cub200 + losses.multi_similarity (backbone from datasets.cub200.train, "
        "pretrained from datasets.cub200.train): backbone 'resnet50' with pretrained: true cannot "
        "get its pretrained weights: HF_HUB_OFFLINE is set and its weights "
        "(timm/resnet50.a1_in1k) are not in the hub cache"
    ) in err, err
    assert "train.pretrained_file: <path to resnet50.pth>" in err
    assert "(2) a pre-filled hub cache" in err


def test_pretrained_weights_from_the_hub_cache_or_a_file_pass(tmp_path, monkeypatch, offline):
    """A pre-filled hub cache passes offline; so does a pretrained_file that fits the backbone,
    and one that does not is refused naming its keys."""
    from dmlstudy.study.check_params import check_weights
    from tests.models.test_pretrained import _fill_hub_cache, _saved_backbone

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    _fill_hub_cache(tmp_path / "hub", "timm/resnet50.a1_in1k")
    check_weights(config_from_dict(_photo_raw()))

    small = dict(backbone="test_resnet", embedding_dim=32)
    _saved_backbone(tmp_path / "rgb.pth", in_chans=3)
    config = config_from_dict(_photo_raw(pretrained_file=str(tmp_path / "rgb.pth"), **small))
    check_weights(config)
    _saved_backbone(tmp_path / "gray.pth", in_chans=1)
    config = config_from_dict(_photo_raw(pretrained_file=str(tmp_path / "gray.pth"), **small))
    with pytest.raises(ParamsError, match=r"pretrained_file from datasets.cub200.train.*mis-sh"):
        check_weights(config)
