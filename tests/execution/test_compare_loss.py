"""make compare's params.yaml edit and its refusals (execution/compare_loss.py); the command
itself runs end to end in tests/execution/test_paper_study.py."""

from __future__ import annotations

import pytest
import yaml

from dmlstudy.config import load_config
from dmlstudy.execution.compare_loss import CompareError, check_loss, write_winner

PARAMS = """\
# a comment that stays
study:
  losses: [triplet, norm_softmax]
  untuned: [norm_softmax]         # until tuned
losses:
  triplet:
    margin: 0.1
    per_dataset: {omniglot: {margin: 0.2}}
  norm_softmax:
    temperature: 0.05              # published
    train: {layer_norm: true}

tuning:
  space: {}
"""


def test_the_winner_is_written_into_the_text_with_its_comments(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(PARAMS)
    write_winner(path, "norm_softmax", "omniglot", {"temperature": 0.1, "train": {"lr": 0.002}})
    text = path.read_text()
    assert "# a comment that stays" in text and "# published" in text and "# until tuned" in text
    doc = yaml.safe_load(text)
    assert doc["losses"]["norm_softmax"]["per_dataset"] == {
        "omniglot": {"temperature": 0.1, "train": {"lr": 0.002}}
    }
    assert doc["study"]["untuned"] == [] and doc["losses"]["triplet"]["margin"] == 0.1
    write_winner(path, "norm_softmax", "cub200", {"temperature": 0.2})  # a second dataset
    write_winner(path, "triplet", "omniglot", {"margin": 0.3})  # an inline per_dataset, replaced
    doc = yaml.safe_load(path.read_text())
    assert set(doc["losses"]["norm_softmax"]["per_dataset"]) == {"omniglot", "cub200"}
    assert doc["losses"]["triplet"]["per_dataset"] == {"omniglot": {"margin": 0.3}}


def test_a_block_style_untuned_list_is_edited_whole(tmp_path):
    path = tmp_path / "params.yaml"
    doc = yaml.safe_load(PARAMS)
    doc["study"]["untuned"] = ["norm_softmax", "triplet"]
    path.write_text(yaml.safe_dump(doc, sort_keys=False))  # `untuned:\n- norm_softmax\n- ...`
    write_winner(path, "norm_softmax", "omniglot", {})
    assert yaml.safe_load(path.read_text())["study"]["untuned"] == ["triplet"]


def test_an_edit_that_cannot_be_made_safely_writes_nothing(tmp_path):
    path = tmp_path / "params.yaml"
    flow = "  norm_softmax: {temperature: 0.05, train: {layer_norm: true}}\n"
    block = "  norm_softmax:\n    temperature: 0.05              # published\n"
    block += "    train: {layer_norm: true}\n"
    assert block in PARAMS
    path.write_text(PARAMS.replace(block, flow))  # a flow-style section: no line to add under
    before = path.read_text()
    with pytest.raises(CompareError, match="by hand"):
        write_winner(path, "norm_softmax", "omniglot", {"temperature": 0.1})
    assert path.read_text() == before


def test_a_loss_outside_the_study_or_without_a_space_is_refused_naming_the_step():
    from pathlib import Path

    config = load_config(Path(__file__).resolve().parents[2] / "params.yaml")
    match = r"not in profiles\.paper\.losses.*adding-a-loss\.md, step 2"
    with pytest.raises(CompareError, match=match):
        check_loss(config, "norm_softmax")
    check_loss(config, "npair")  # compared in the paper-grade study, not in the quick default
