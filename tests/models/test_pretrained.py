"""Pretrained weights without a network (dmlstudy/models/pretrained.py): a local state_dict file
(``train.pretrained_file``) trained from, checked against the backbone's keys; the hub cache
found, or its absence refused, without the network."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dmlstudy.models.embedder import create_backbone
from dmlstudy.models.pretrained import (
    cached_weights,
    hub_weights_problem,
    load_backbone_file,
    weights_help,
)
from dmlstudy.training import loop as loop_module
from dmlstudy.training import train

BACKBONE = "test_resnet"  # timm's 0.4 M-parameter test ResNet
FIRST_CONV = "conv1.0.weight"


def _saved_backbone(path: Path, in_chans: int, seed: int = 123) -> dict[str, torch.Tensor]:
    """A randomly initialised backbone's state_dict saved at ``path``, with the ImageNet
    classifier a timm checkpoint carries (``fc.*``, which the headless backbone lacks)."""
    torch.manual_seed(seed)
    state = create_backbone(BACKBONE, pretrained=False, in_chans=in_chans).state_dict()
    state = {**state, "fc.weight": torch.zeros(1000, 96), "fc.bias": torch.zeros(1000)}
    torch.save(state, path)
    return state


def test_training_starts_from_the_pretrained_file(tmp_path, make_settings, monkeypatch):
    """The backbone's weights at step 0 are the file's (first conv compared), and the run
    records the file; without it the same seed starts elsewhere."""
    state = _saved_backbone(tmp_path / "weights.pth", in_chans=1)
    at_step_0: list[torch.Tensor] = []
    build_optimizer = loop_module.build_optimizer

    def spy(model, loss_fn, s):  # called once the model is built and loaded, before step 0
        at_step_0.append(model.backbone.state_dict()[FIRST_CONV].detach().clone())
        return build_optimizer(model, loss_fn, s)

    monkeypatch.setattr(loop_module, "build_optimizer", spy)
    common = dict(backbone=BACKBONE, embedding_dim=8, epochs=1, eval_batch_size=64)
    metrics = train(
        make_settings(
            tmp_path / "run", pretrained=True, pretrained_file=tmp_path / "weights.pth", **common
        )
    )
    assert torch.equal(at_step_0[0], state[FIRST_CONV])
    assert metrics["settings"]["pretrained_file"] == str(tmp_path / "weights.pth")
    train(make_settings(tmp_path / "scratch", **common))
    assert not torch.equal(at_step_0[1], state[FIRST_CONV])


def test_a_file_of_another_model_names_missing_and_unexpected_keys(tmp_path):
    backbone = create_backbone(BACKBONE, pretrained=False, in_chans=3)
    state = dict(backbone.state_dict())
    state["stem.weight"] = state.pop(FIRST_CONV)
    torch.save(state, tmp_path / "other.pth")
    with pytest.raises(ValueError) as err:
        load_backbone_file(backbone, tmp_path / "other.pth")
    msg = str(err.value)
    assert f"1 missing key(s): {FIRST_CONV}" in msg and "1 unexpected key(s): stem.weight" in msg
    assert "Save the state_dict of the same timm model (and in_chans)" in msg

    _saved_backbone(tmp_path / "gray.pth", in_chans=1)  # another in_chans: shapes differ
    with pytest.raises(ValueError, match=rf"1 mis-shaped key\(s\): {FIRST_CONV} \(16, 1, 3, 3\)"):
        load_backbone_file(backbone, tmp_path / "gray.pth")


def test_a_file_that_is_no_state_dict_or_absent_is_refused(tmp_path):
    backbone = create_backbone(BACKBONE, pretrained=False, in_chans=3)
    torch.save({"model": backbone}, tmp_path / "pickled.pth")  # a whole module: not weights_only
    with pytest.raises(ValueError, match="is not a tensors-only torch file"):
        load_backbone_file(backbone, tmp_path / "pickled.pth")
    with pytest.raises(FileNotFoundError, match=r"train.pretrained_file .* does not exist"):
        load_backbone_file(backbone, tmp_path / "absent.pth")


def _fill_hub_cache(cache: Path, repo_id: str, filename: str = "model.safetensors") -> Path:
    """The layout huggingface_hub writes: refs/main names a snapshot holding the file."""
    folder = cache / f"models--{repo_id.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text("0" * 40)
    snapshot = folder / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / filename).write_bytes(b"weights")
    return snapshot / filename


def test_hub_weights_offline_are_refused_unless_cached(tmp_path, monkeypatch):
    """HF_HUB_OFFLINE with an empty cache: refused without any probe; a pre-filled cache (as
    huggingface_hub lays it out, under $HF_HUB_CACHE) is found."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))

    def no_probe(url: str) -> str | None:
        raise AssertionError(f"offline: nothing may be probed ({url})")

    reason = hub_weights_problem("resnet50", probe=no_probe)
    assert reason == (
        f"HF_HUB_OFFLINE is set and its weights (timm/resnet50.a1_in1k) are not in the hub cache "
        f"{tmp_path / 'hub'}"
    )
    path = _fill_hub_cache(tmp_path / "hub", "timm/resnet50.a1_in1k")
    assert cached_weights("resnet50") == path
    assert hub_weights_problem("resnet50", probe=no_probe) is None


def test_hub_weights_online_are_probed_once(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    probed: list[str] = []

    def down(url: str) -> str | None:
        probed.append(url)
        return "cannot reach huggingface.co: Temporary failure in name resolution"

    reason = hub_weights_problem("resnet50", probe=down)
    assert probed == ["https://huggingface.co/timm/resnet50.a1_in1k"]
    assert reason is not None and reason.endswith("Temporary failure in name resolution")
    assert hub_weights_problem("resnet50", probe=lambda url: None) is None


def test_the_help_names_the_model_and_both_ways():
    msg = weights_help("resnet50", "HF_HUB_OFFLINE is set")
    assert msg.startswith("backbone 'resnet50' with pretrained: true cannot get its pretrained")
    assert "(1) a local file" in msg and "train.pretrained_file: <path to resnet50.pth>" in msg
    assert "(2) a pre-filled hub cache" in msg and "HF_HUB_OFFLINE=1" in msg
