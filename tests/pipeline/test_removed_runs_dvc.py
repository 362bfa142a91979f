"""Where the finished runs of a loss taken out of ``study.losses`` go, and how README's recipe
brings them back (a matrix stage with ``persist: true`` outputs, as dvc.yaml's ``train``, in a
temporary repository; ~10 s).

``dvc exp run`` starts with a ``dvc checkout``, which deletes every output DVC once wrote that no
stage of the current dvc.yaml declares (DVC's "unused links"): the runs of a loss no longer in the
matrix leave the workspace. They stay in DVC's cache; a checkout of a dvc.lock that lists them
restores them. Plain ``dvc repro`` leaves them in place.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from tests.support.tiny_repo import REPO, dvc, env

DVC_YAML = {
    "stages": {
        "train": {
            "matrix": {"loss": "${study.losses}"},
            "cmd": "mkdir -p work/runs/${item.loss}/seed0"
            " && echo ${item.loss} > work/runs/${item.loss}/seed0/metrics.json",
            "params": ["study.losses"],
            "outs": [{"work/runs/${item.loss}/seed0": {"persist": True}}],
        }
    }
}


def _git(repo: Path, e: dict, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, env=e, check=True, capture_output=True)


def _losses(repo: Path, losses: list[str]) -> None:
    (repo / "params.yaml").write_text(yaml.safe_dump({"study": {"losses": losses}}))


def _runs(repo: Path) -> list[str]:
    return sorted(p.parent.parent.name for p in (repo / "work" / "runs").glob("*/seed0/*.json"))


def test_exp_run_removes_the_runs_of_a_removed_loss_and_checkout_restores_them(
    tmp_path: Path,
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    e = env(tmp_path, tmp_path)
    _git(repo, e, "init", "-q")
    dvc(repo, e, "init", "-q")
    (repo / "dvc.yaml").write_text(yaml.safe_dump(DVC_YAML))
    _losses(repo, ["a", "b", "c"])
    dvc(repo, e, "repro", "-q")
    _git(repo, e, "add", "-A")
    _git(repo, e, "commit", "-qm", "three losses")

    _losses(repo, ["a"])
    dvc(repo, e, "repro", "-q")
    assert _runs(repo) == ["a", "b", "c"], "plain dvc repro keeps them"
    dvc(repo, e, "exp", "run")
    assert _runs(repo) == ["a"], "DVC's checkout no longer deletes them: update README"

    # README's recipe: check out a dvc.lock (and params.yaml) that lists them
    _git(repo, e, "checkout", "HEAD", "--", "params.yaml", "dvc.lock")
    dvc(repo, e, "checkout")
    assert _runs(repo) == ["a", "b", "c"]
    assert (repo / "work/runs/b/seed0/metrics.json").read_text() == "b\n"


def test_readme_says_where_the_runs_of_a_removed_loss_went_and_how_to_get_them_back() -> None:
    """Issue #18 case 8: the runs vanished without a word. DVC deletes them (test above), so
    README names who deletes them and the recipe the test above runs."""
    readme = " ".join((REPO / "README.md").read_text().split())
    assert "`dvc exp run`, `dvc exp apply` and `dvc checkout` delete the outputs" in readme
    assert "`git checkout <commit> -- params.yaml dvc.lock && dvc checkout`" in readme
