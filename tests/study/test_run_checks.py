"""Settings that only the data or the model refuse fail in check_params, naming the keys, where
they failed only at training (issue #18, item 4): classes per batch against the training
classes, m_per_class against the images per class, embedding_dim against the backbone."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from dmlstudy.config import ParamsError, config_from_dict
from dmlstudy.data import prepare_dataset
from dmlstudy.study.check_params import main
from dmlstudy.study.run_checks import LevelCounts, SplitCounts, check_batches, split_counts
from dmlstudy.training import TrainSettings
from tests.support.params import paper_design

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def data_env(tmp_path, monkeypatch, shared_omniglot_dir):
    """The offline Omniglot archives as the data directory, no network, an empty work dir."""
    monkeypatch.setenv("DMLSTUDY_DATA_DIR", str(shared_omniglot_dir.parent))
    monkeypatch.setenv("DMLSTUDY_WORK_DIR", str(tmp_path / "work"))

    def refuse(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def _raw(profile: str = "full") -> dict:
    """params.yaml with every kind of run as its study (paper_design), at ``profile``."""
    raw = paper_design(yaml.safe_load((REPO / "params.yaml").read_text()))
    raw["study"]["profile"] = profile
    return raw


def _check(tmp_path: Path, raw: dict, capsys) -> tuple[int, str]:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    rc = main([str(path), str(tmp_path / "ok")])
    return rc, capsys.readouterr().err


def test_more_classes_per_batch_than_training_classes_fail_naming_the_keys(
    tmp_path, data_env, capsys
):
    """batch_size 1024, m_per_class 2 under the tiny profile: 512 classes per batch, 36 training
    characters; it failed at training (21 s), after the previous run folder was emptied."""
    raw = _raw("tiny")
    raw["profiles"]["tiny"]["train"].update(batch_size=1024, m_per_class=2)
    rc, err = _check(tmp_path, raw, capsys)
    assert rc == 1 and not (tmp_path / "ok").exists()
    assert (
        "datasets.omniglot + losses.contrastive: batch_size / m_per_class = 1024 / 2 = 512 classes "
        "per batch, but the fine-label training split of omniglot (counted from the omniglot "
        "archives' index) holds 36 classes (batch_size from profiles.tiny.train, m_per_class from "
        "profiles.tiny.train). To fix: batch_size <= 72"
    ) in err, err


def test_coarse_label_runs_count_the_coarse_classes(tmp_path, data_env, capsys):
    """The multi-modal runs train on 21 alphabets (30 background alphabets less the 9 that
    val_coarse_fraction 0.3 holds out; the prepared split's 26 counted the 5 it moves): 1024 / 8
    = 128 classes per batch fail there (the fine-label runs' 858 characters hold 1024 / 2)."""
    raw = _raw()
    raw["datasets"]["omniglot"]["train"].update(batch_size=1024, m_per_class=2)
    rc, err = _check(tmp_path, raw, capsys)
    assert rc == 1
    assert "multimodal on omniglot + losses.contrastive: batch_size / m_per_class = 1024 / 8" in err
    assert "coarse-label training split of omniglot" in err and "holds 21 classes" in err
    assert "m_per_class from multimodal.train" in err, err


def test_a_validation_split_the_coarse_classes_cannot_fill_fails_before_training(
    tmp_path, data_env, capsys
):
    """val_coarse_fraction 0.99 of 30 alphabets leaves none to train on: refused in check_params
    (it failed in the multi-modal stage, after the main study's trainings)."""
    raw = _raw()
    raw["multimodal"]["train"]["val_coarse_fraction"] = 0.99
    rc, err = _check(tmp_path, raw, capsys)
    assert rc == 1 and not (tmp_path / "ok").exists()
    assert "multimodal on omniglot + losses.contrastive: val_coarse_fraction=0.99 of 30" in err
    assert "(two left to train on) (val_coarse_fraction from multimodal.train)" in err, err


def test_m_per_class_above_the_images_per_class_fails(tmp_path, data_env, capsys):
    """m_per_class 32 with Omniglot's 20 drawings per character was sampled with replacement."""
    raw = _raw()
    raw["datasets"]["omniglot"]["train"].update(batch_size=128, m_per_class=32)
    rc, err = _check(tmp_path, raw, capsys)
    assert rc == 1
    assert "m_per_class 32 exceeds the images of every class of the fine-label training " in err
    assert "(at most 20): the sampler would draw every class with replacement" in err, err
    assert "(m_per_class from datasets.omniglot.train). To fix: m_per_class <= 20" in err


def test_embedding_dim_above_the_backbone_width_fails(tmp_path, data_env, capsys):
    raw = _raw()
    raw["datasets"]["omniglot"]["train"]["embedding_dim"] = 1000
    rc, err = _check(tmp_path, raw, capsys)
    assert rc == 1
    assert "embedding_dim from datasets.omniglot.train" in err, err
    assert "embedding_dim 1000 exceeds the 32 features of backbone 'convnet4_050'" in err
    assert "Use embedding_dim <= 32 or a wider backbone" in err


def test_the_study_passes_at_both_profiles(tmp_path, data_env, capsys):
    for profile in ("full", "tiny"):
        rc, err = _check(tmp_path, _raw(profile), capsys)
        assert rc == 0 and "WARNING" not in err, err


def test_counts_come_from_the_prepared_data_when_it_matches(tmp_path, data_env):
    config = config_from_dict(_raw("tiny"))
    p = config.prepare_settings("omniglot")
    root = tmp_path / "prepared"
    prepare_dataset(
        "omniglot", None, root / "omniglot", image_size=p.image_size,
        val_fraction=p.val_fraction, seed=p.split_seed, val_by=p.val_by,
        max_classes_per_split=p.max_classes_per_split, download=False,
    )  # fmt: skip
    counts = split_counts(config, "omniglot", root)
    assert counts.source == f"the prepared data in {root / 'omniglot'}"
    assert (counts.fine.classes, counts.fine.typical, counts.fine.exact) == (36, 20.0, True)
    # prepared with other settings (the full profile): counted from the archives instead
    full = split_counts(config_from_dict(_raw()), "omniglot", root)
    assert full.source == "the omniglot archives' index" and full.fine.classes == 858


def test_without_data_the_official_split_sizes_bound_the_batches(tmp_path, monkeypatch):
    """CUB-200 not downloaded: 100 training classes, 20 of them validation (val_by class)."""
    monkeypatch.setenv("DMLSTUDY_DATA_DIR", str(tmp_path / "none"))
    raw = _raw()
    raw["study"].update(datasets=["cub200"], multimodal=[])
    counts = split_counts(config_from_dict(raw), "cub200", tmp_path)
    assert "cub200's official split sizes" in counts.source
    assert (counts.fine.classes, counts.fine.classes_exact, counts.fine.exact) == (80, True, False)
    s = TrainSettings(prepared_dir=".", out_dir=".", loss="triplet", batch_size=240, m_per_class=2)
    with pytest.raises(ParamsError, match=r"120 classes per batch, but .* holds 80 classes"):
        check_batches(s, "datasets.cub200 + losses.triplet", counts, lambda k: "x")


def test_m_per_class_above_the_smallest_or_typical_classes_warns():
    """SOP-like classes (2 to 12 images): m above the smallest is common practice, a warning;
    above the median too (most classes repeat images); above the largest an error."""
    counts = SplitCounts("sop", "an index", LevelCounts(100, 600, 6.0, 2, 12, True, True), None)
    s = TrainSettings(prepared_dir=".", out_dir=".", loss="triplet", batch_size=16, m_per_class=4)
    (warning,) = check_batches(s, "here", counts, lambda k: "x")
    assert "m_per_class 4 exceeds the 2 images of the smallest classes" in warning
    (warning,) = check_batches(s.model_copy(update={"m_per_class": 8}), "here", counts, str)
    assert "m_per_class 8 exceeds the median 6 images per class" in warning
    with pytest.raises(ParamsError, match=r"images of every class .* \(at most 12\)"):
        check_batches(s.model_copy(update={"m_per_class": 16}), "here", counts, str)
    random = s.model_copy(update={"sampler": "random", "batch_size": 601})
    with pytest.raises(ParamsError, match="batch_size 601 exceeds the 600 images"):
        check_batches(random, "here", counts, lambda k: "x")
