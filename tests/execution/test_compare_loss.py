"""make compare's refusals (execution/compare_loss.py); its params.yaml edit is
tests/study/test_params_text.py's, the command itself runs end to end in
tests/execution/test_paper_study.py."""

from __future__ import annotations

import pytest

from dmlstudy.config import load_config
from dmlstudy.execution.compare_loss import CompareError, check_loss


def test_a_loss_outside_the_study_or_without_a_space_is_refused_naming_the_step():
    from pathlib import Path

    config = load_config(Path(__file__).resolve().parents[2] / "params.yaml")
    match = r"not in profiles\.paper\.losses.*adding-a-loss\.md, step 2"
    with pytest.raises(CompareError, match=match):
        check_loss(config, "norm_softmax")
    check_loss(config, "npair")  # compared in the paper-grade study, not in the quick default
