"""The first pipeline stage rejects bad params (including cross-field and loss-level errors)."""

from __future__ import annotations

from pathlib import Path

from dmlstudy.pipeline.check_params import MARKER, main

REPO = Path(__file__).resolve().parents[2]


def test_valid_params_write_the_constant_marker(tmp_path):
    marker = tmp_path / "ok" / "params.ok"
    assert main([str(REPO / "params.yaml"), str(marker)]) == 0
    assert marker.read_text() == MARKER


def test_merged_settings_and_loss_schedule_errors_fail(tmp_path, capsys):
    text = (REPO / "params.yaml").read_text()
    bad = tmp_path / "params.yaml"
    bad.write_text(text.replace("omniglot: {phase2_epochs: 0,", "omniglot: {phase2_epochs: 3,"))
    assert main([str(bad), str(tmp_path / "ok")]) == 1
    err = capsys.readouterr().err
    assert "datasets.omniglot + losses.rsw" in err and "phase2_epochs" in err
    bad.write_text(
        text.replace(
            "      m_per_class: 4\n      lr: 0.001", "      m_per_class: 5\n      lr: 0.001"
        )
    )
    assert main([str(bad), str(tmp_path / "ok")]) == 1
    assert "multiple of m_per_class" in capsys.readouterr().err
    assert not (tmp_path / "ok").exists()
