"""An edit of params.yaml does what it says, or check_params says why not (dmlstudy.study.edits):
an edit that a more specific key overrides in every run is an error naming both keys, one that
reaches some runs only a warning naming the others, and every run's page says which key set each
value."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dmlstudy.config import ParamsError, load_config
from dmlstudy.study.check_params import main as check_params_main
from dmlstudy.study.edits import check_edits, edit_effects
from dmlstudy.study.runs import RunSpec, settings_provenance, train_settings

REPO = Path(__file__).resolve().parents[2]
_TUNED = yaml.safe_load((REPO / "params.yaml").read_text())["losses"]
#: the shipped tuned values these tests edit around (the campaign's winners, read, not copied)
NEG = _TUNED["contrastive"]["per_dataset"]["omniglot"]["neg_margin"]
CONTRASTIVE_LR = _TUNED["contrastive"]["per_dataset"]["omniglot"]["train"]["lr"]


def _git(folder: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=folder,
        check=True,
        capture_output=True,
    )


@pytest.fixture
def committed(tmp_path) -> Path:
    """The shipped params.yaml committed in a fresh git repository."""
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", "params.yaml")
    _git(tmp_path, "commit", "-qm", "params")
    return tmp_path / "params.yaml"


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new))


def test_unchanged_params_have_nothing_to_say(committed):
    assert check_edits(load_config(committed), committed) == []


def test_an_edit_every_run_overrides_is_an_error_naming_both_keys(committed):
    """The issue's case: `-S losses.contrastive.neg_margin=0.3` reused the finished run, the
    tuned value winning in silence."""
    _edit(committed, "    neg_margin: 0.5\n", "    neg_margin: 0.3\n")
    with pytest.raises(ParamsError) as err:
        check_edits(load_config(committed), committed)
    msg = str(err.value)
    assert "losses.contrastive.neg_margin = 0.3" in msg
    assert f"shadowed by losses.contrastive.per_dataset.omniglot.neg_margin (= {NEG})" in msg
    assert "Edit losses.contrastive.per_dataset.omniglot.neg_margin instead" in msg


def test_an_edit_of_the_deciding_key_is_reported_run_by_run(committed):
    _edit(committed, f"neg_margin: {NEG}", "neg_margin: 0.3")
    lines = check_edits(load_config(committed), committed)
    assert any(
        "losses.contrastive.per_dataset.omniglot.neg_margin = 0.3: decides 1 run(s): "
        "omniglot/contrastive" in line  # the paper study's run: check_params covers it too
        for line in lines
    ), lines
    assert not any("WARNING" in line for line in lines)


def test_an_edit_some_runs_override_is_a_warning_naming_them(committed):
    """`datasets.omniglot.train.lr` reaches only the losses without a tuned lr (Proxy-Anchor's
    and triplet's winners are their published values)."""
    _edit(committed, "      lr: 0.001\n", "      lr: 0.002\n")
    text = "\n".join(check_edits(load_config(committed), committed))
    assert "WARNING: datasets.omniglot.train.lr = 0.002: decides " in text
    assert "omniglot/proxy_anchor" in text and "omniglot/triplet" in text
    lr = f"(= {CONTRASTIVE_LR})"
    assert f"shadowed by losses.contrastive.per_dataset.omniglot.train.lr {lr}" in text


def test_outside_git_a_published_value_every_run_overrides_is_still_an_error(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(
        (REPO / "params.yaml").read_text().replace("neg_margin: 0.5\n", "neg_margin: 0.3\n")
    )
    with pytest.raises(ParamsError, match=r"losses.contrastive.neg_margin = 0.3: shadowed by"):
        check_edits(load_config(path), path)


def test_check_params_prints_what_an_edit_changes_or_fails(committed, capsys):
    """The first stage of `dvc repro` / `dvc exp run`: an error before any compute."""
    _edit(committed, "    neg_margin: 0.5\n", "    neg_margin: 0.3\n")
    assert check_params_main([str(committed)]) == 1
    assert (
        "shadowed by losses.contrastive.per_dataset.omniglot.neg_margin" in capsys.readouterr().err
    )


def test_ablation_and_multimodal_runs_are_covered():
    config = load_config(REPO / "params.yaml").everything()  # the paper study's ablations
    study = config.study.model_copy(update={"multimodal": ["omniglot"]})
    config = config.model_copy(update={"study": study})
    (effect,) = edit_effects(config, ["losses.direction.per_dataset.omniglot.gamma"])
    # the main run takes the tuned gamma; every arm of the direction_gamma sweep sets its own
    assert effect.decides == ["omniglot/direction", "multimodal omniglot/direction"]
    assert len(effect.shadowed) == 4  # one per swept value
    assert all(
        k.startswith("ablations.direction_gamma.sweep.loss_params.gamma (= ")
        for k in effect.shadowed
    )


def test_the_run_page_table_names_the_key_that_set_each_value():
    config = load_config(REPO / "params.yaml")
    s = train_settings(config, "omniglot", "contrastive", 0, prepared_dir="p", out_dir="o")
    table = settings_provenance(config, RunSpec("x", "omniglot", "contrastive"), s)
    row = table.loc["loss_params.neg_margin"]
    assert row["value"] == NEG
    assert row["set by"] == "losses.contrastive.per_dataset.omniglot.neg_margin"
    assert row["shadows"] == "losses.contrastive.neg_margin = 0.5"
    assert table.loc["lr", "set by"] == "losses.contrastive.per_dataset.omniglot.train.lr"
    assert table.loc["seed", "set by"] == "dvc.yaml (stage)"
    assert table.loc["pooling", "set by"] == "default"
    assert set(table.index) == {
        *(k for k in s.model_dump() if k != "loss_params"),
        *(f"loss_params.{k}" for k in s.loss_params),
    }


@pytest.mark.slow
def test_dvc_exp_run_of_a_tuned_loss_trains_the_edited_value(tiny_study, tmp_path):
    """README's tweak through `dvc exp run -S`, for a loss with tuned values (contrastive): the
    published key is refused at check_params naming the tuned one; the tuned key retrains the run
    with the new value."""
    from tests.support.tiny_repo import dvc

    src, env, _ = tiny_study
    repo = tmp_path / "repo"
    shutil.copytree(src, repo, symlinks=True)
    stage = "train@omniglot-contrastive-0"
    refused = dvc(
        repo, env, "exp", "run", "-S", "losses.contrastive.neg_margin=0.3", stage, check=False
    )
    out = refused.stdout + refused.stderr
    assert refused.returncode != 0
    assert "shadowed by losses.contrastive.per_dataset.omniglot.neg_margin" in out, out[-3000:]
    assert "Running stage 'train@" not in out
    subprocess.run(["git", "checkout", "params.yaml"], cwd=repo, check=True)
    key = "losses.contrastive.per_dataset.omniglot.neg_margin"
    dvc(repo, env, "exp", "run", "-S", f"{key}=0.3", stage)
    metrics = json.loads((repo / "work/runs/omniglot/contrastive/seed0/metrics.json").read_text())
    assert metrics["settings"]["loss_params"]["neg_margin"] == 0.3
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert params["losses"]["contrastive"]["per_dataset"]["omniglot"]["neg_margin"] == 0.3
    page = (repo / "reports/omniglot/train/contrastive-seed0.html").read_text()
    assert "losses.contrastive.per_dataset.omniglot.neg_margin" in page
    # `make exps`: the experiment readable at 120 columns (dvc exp show: ~385 columns of "…")
    shown = subprocess.run(
        [sys.executable, "-m", "dmlstudy.reports.experiments", "--repo", str(repo)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lines = shown.splitlines()
    assert max(map(len, lines)) <= 120, shown
    row = next(line for line in lines if line.startswith(key))
    assert row.split()[1:] == ["0.3", str(NEG), "0.3"], shown  # workspace, baseline, experiment
