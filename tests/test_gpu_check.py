"""benchmarks/gpu_check.py, the one command for a lent GPU, runs end to end (``--tiny`` on the
CPU): every part reports, and batches made ahead train and embed bit-identically."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def test_gpu_check_runs_tiny_on_the_cpu(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    report = module.main(["--tiny", "--json", str(tmp_path / "check.json")])
    assert report["ahead_equals_inline"] and report["inline_repeatable"]
    assert report["study_img_s"] > 0 and report["bare_img_s"] > 0 and report["embed_img_s"] > 0
    assert report["knn_rows"] == 600 and report["knn_seconds"] >= 0
    assert report["settings"]["backbone"] == "convnet4" and report["settings"]["loss"]
    assert json.loads((tmp_path / "check.json").read_text()) == json.loads(json.dumps(report))
    out = capsys.readouterr().out
    for line in ("data path", "study/bare", "embed", "knn"):
        assert line in out
    assert "    python benchmarks/gpu_check.py" in module.__doc__  # THE command, documented
