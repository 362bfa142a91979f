"""params.yaml (as loaded into a dict) reshaped for tests that narrow or widen the study."""

from __future__ import annotations

from typing import Any


def paper_design(raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` (changed in place and returned) with the paper-grade study's losses and ablations
    and the multi-modal experiment on Omniglot as its ``study``: every kind of run check_params
    builds (the quick default trains six losses with neither)."""
    paper = raw["profiles"]["paper"]
    raw["study"].update(
        losses=list(paper["losses"]), ablations=list(paper["ablations"]), multimodal=["omniglot"]
    )
    return raw


def one_study(raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` (changed in place and returned) whose paper-grade study trains what ``study``
    lists, at the time of the call (no other profile names losses or ablations): every check
    covers ``study.losses`` and ``study.ablations`` alone."""
    for name, profile in raw["profiles"].items():
        profile.pop("losses", None)
        profile.pop("ablations", None)
        if name == "paper":
            profile.update(
                losses=list(raw["study"]["losses"]), ablations=list(raw["study"]["ablations"])
            )
    return raw
