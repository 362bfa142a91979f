"""params.yaml edited in its text (study/params_text.py): the winner written with its comments
and layout kept, or nothing written when the edit cannot be made safely."""

from __future__ import annotations

import pytest
import yaml

from dmlstudy.study.params_text import ParamsEditError, write_winner

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
    with pytest.raises(ParamsEditError, match="by hand"):
        write_winner(path, "norm_softmax", "omniglot", {"temperature": 0.1})
    assert path.read_text() == before


def test_the_per_dataset_comment_is_replaced_when_given(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(PARAMS.replace(
        "    per_dataset: {omniglot: {margin: 0.2}}",
        "    per_dataset:                  # campaign v1 trial 3\n"
        "      # a note inside the block stays\n"
        "      omniglot: {margin: 0.2}",
    ))  # fmt: skip
    write_winner(path, "triplet", "omniglot", {"margin": 0.25}, comment="campaign v2 trial 7")
    text = path.read_text()
    assert "    per_dataset:                  # campaign v2 trial 7\n" in text
    assert "v1" not in text and "# a note inside the block stays" in text
    tuned = yaml.safe_load(text)["losses"]["triplet"]["per_dataset"]
    assert tuned == {"omniglot": {"margin": 0.25}}
    write_winner(path, "norm_softmax", "omniglot", {"temperature": 0.1}, comment="new")
    assert "    per_dataset:                  # new\n      omniglot: {temperature: 0.1}" in (
        path.read_text()
    )
    write_winner(path, "triplet", "omniglot", {"margin": 0.3})  # no comment given: kept
    assert "# campaign v2 trial 7" in path.read_text()
