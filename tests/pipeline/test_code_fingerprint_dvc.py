"""What DVC reruns after a code or profile edit, with dvc.yaml's own ``fingerprint``, ``prepare``
and ``train`` stages (their deps and params as written) and stand-in commands: a comment is not
a retrain, nor is a sibling loss's edit or a new loss module, and a profile's ``train`` edit does
not rerun the preparation (``dvc status`` / ``dvc repro`` in a temporary repository, ~30 s)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import yaml

from tests.support.tiny_repo import REPO, dvc, env

LOSSES = ["contrastive", "arcface"]


def _stand_in(stage: dict, cmd: str) -> dict:
    """``stage`` with ``cmd`` and only the deps and outs a stand-in repository has."""
    body = dict(stage.get("do", stage))
    body["cmd"] = cmd
    body["deps"] = [d for d in body["deps"] if d.startswith(("dmlstudy", "work/"))]
    body["outs"] = body["outs"][:1]
    return {**stage, "do": body} if "do" in stage else body


def _repo(tmp: Path) -> Path:
    repo = tmp / "repo"
    repo.mkdir()
    shutil.copytree(
        REPO / "dmlstudy", repo / "dmlstudy", ignore=shutil.ignore_patterns("__pycache__")
    )
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    run = "work/runs/${item.dataset}/${item.loss}/seed${item.seed}"
    dvc_yaml = {
        "stages": {
            "fingerprint": stages["fingerprint"],
            "prepare": _stand_in(
                stages["prepare"],
                "mkdir -p work/prepared/${item} && echo ${item} >> prepared.log"
                " && echo ok > work/prepared/${item}/meta.json",
            ),
            "train": _stand_in(
                stages["train"],
                f"mkdir -p {run} && echo ${{item.loss}} >> trained.log && echo ok > {run}/m.json",
            ),
        }
    }
    (repo / "dvc.yaml").write_text(yaml.safe_dump(dvc_yaml, sort_keys=False))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["study"].update(
        datasets=["omniglot"], losses=LOSSES, seeds=[0], ablations=[], profile="full"
    )
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (repo / "work").mkdir()
    (repo / "work" / "params.ok").write_text("ok\n")  # check_params' output, not rerun here
    return repo


def _log(repo: Path, name: str) -> list[str]:
    path = repo / name
    return path.read_text().split() if path.exists() else []


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


def test_comment_edits_rerun_only_the_fingerprint_stage(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    e = env(tmp_path, tmp_path)
    dvc(repo, e, "init", "--no-scm", "-q")
    dvc(repo, e, "repro", "-q")
    assert sorted(_log(repo, "trained.log")) == sorted(LOSSES)

    # a comment and a docstring in the losses' and the trainer's code, a new loss module
    pair = repo / "dmlstudy" / "losses" / "pair.py"
    pair.write_text("# a comment\n\n" + pair.read_text().replace('"""', '"""Edited.\n\n', 1))
    _append(repo / "dmlstudy" / "training" / "loop.py", "\n# a comment in the trainer\n")
    (repo / "dmlstudy" / "losses" / "new_loss.py").write_text("NEW = 1\n")
    status = dvc(repo, e, "status").stdout
    assert "fingerprint:" in status and "train@" not in status, status
    start = time.perf_counter()
    dvc(repo, e, "repro", "-q")
    seconds = time.perf_counter() - start
    assert sorted(_log(repo, "trained.log")) == sorted(LOSSES), "a comment retrained"
    assert "train@" not in dvc(repo, e, "status").stdout
    assert seconds < 60, f"dvc repro after a comment edit took {seconds:.0f} s"

    # a real edit of arcface's module reruns arcface's training only
    _append(repo / "dmlstudy" / "losses" / "margin_softmax.py", "\nEDITED = 1\n")
    dvc(repo, e, "repro", "-q")
    assert sorted(_log(repo, "trained.log")) == sorted([*LOSSES, "arcface"])

    # a profile's train edit reruns the trainings, not the preparation
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["profiles"]["full"]["train"] = {"epochs": 3}
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    status = dvc(repo, e, "status").stdout
    assert "train@omniglot-contrastive-0" in status and "prepare@" not in status, status
