"""A resumed run says so on its page: the train notebook's "What this shows" names the epoch it
resumed after (1-based, as the page's table); a run trained in one go says nothing of it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import jupytext

from dmlstudy.training import TrainSettings, train

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "train.py"


def _what_this_shows(metrics: dict[str, Any]) -> str:
    """The text the notebook's last cell renders for ``metrics``."""
    cell = [c for c in jupytext.read(NOTEBOOK).cells if c.cell_type == "code"][-1]
    shown: list[str] = []
    exec(cell.source, {"metrics": metrics, "Markdown": shown.append})
    assert len(shown) == 1
    return shown[0]


def test_a_resumed_run_says_after_which_epoch_and_an_uninterrupted_one_nothing(
    make_settings: Callable[..., TrainSettings], tmp_path: Path
) -> None:
    s = make_settings(tmp_path / "resumed", epochs=3, max_steps_per_epoch=1)
    assert train(s, _stop_after_epoch=1) == {"interrupted_after_epoch": 1}  # as if killed
    resumed = _what_this_shows(train(s))
    assert (
        "- Resumed after epoch 2 from its checkpoint (1-based, as the table): a bit-identical "
        "continuation" in resumed
    )
    s = make_settings(tmp_path / "whole", epochs=3, max_steps_per_epoch=1)
    whole = _what_this_shows(train(s))
    assert "Selected epoch" in whole and "esumed" not in whole
    assert _what_this_shows(train(s)) == whole  # reused, not trained again: still nothing
