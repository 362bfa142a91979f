"""The paper-grade study (study/paper.py, execution/paper_study.py, reports/paper_report.py,
studies/paper/dvc.yaml)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from dmlstudy.analysis.compact import PER_QUERY_FILE
from dmlstudy.analysis.results import RECALL_FILE, RECALL_KS
from dmlstudy.config import config_from_dict
from dmlstudy.reports import paper_report as PR
from dmlstudy.study import paper as PS

REPO = Path(__file__).resolve().parents[2]
LOSSES = ["contrastive", "triplet", "arcface"]


def _raw(**study) -> dict:
    raw = copy.deepcopy(yaml.safe_load((REPO / "params.yaml").read_text()))
    raw["study"].update({"losses": LOSSES, "ablations": [], "multimodal": [], **study})
    paper = {"losses": raw["study"]["losses"], "ablations": raw["study"]["ablations"]}
    raw["profiles"]["paper"].update(seeds=[0, 1, 2], **paper)
    return raw


def _fake_compact(folder: Path, level: float, seed: int, rng: np.random.Generator) -> None:
    """A compact folder whose per-query AP@R has mean ``level`` (+ a seed effect)."""
    folder.mkdir(parents=True)
    labels = np.repeat(np.arange(60), 5)
    seed_effect = rng.normal(0, 0.01)
    ap = np.clip(level + seed_effect + rng.normal(0, 0.1, labels.size), 0, 1)
    hit = (rng.random(labels.size) < ap + 0.3).astype(np.uint8)
    np.savez_compressed(
        folder / PER_QUERY_FILE,
        **{"fine/labels": labels, "fine/recall@1": hit, "fine/map@r": ap, "fine/r_precision": ap},
    )
    pd.DataFrame({"k": RECALL_KS, "recall": np.linspace(hit.mean(), 1, len(RECALL_KS))}).to_csv(
        folder / RECALL_FILE, index=False
    )
    test = {
        "recall@1": float(hit.mean()),
        "map@r": float(ap.mean()),
        "r_precision": float(ap.mean()),
        "nmi": 0.8,
        **{f"recall@{k}": 0.9 for k in (2, 4, 8)},
    }
    history = [{"epoch": e, "val": {"map@r": level * (e + 1) / 10}} for e in range(10)]
    metrics = {
        "test": test,
        "val": test,
        "best_epoch": 9,
        "epochs_run": 10,
        "converged": True,
        "train_seconds": 1.0,
        "train_images_per_s": 1.0,
        "metric": "cosine",
        "history": history,
        "settings": {},
        "inputs": {},
    }
    (folder / "metrics.json").write_text(json.dumps(metrics))


def _study(root: Path, profile: str, levels: dict[str, float], seeds=(0, 1, 2)) -> None:
    rng = np.random.default_rng(0)
    for loss, level in levels.items():
        for s in seeds:
            _fake_compact(PS.main_dir(root / "runs", profile, "omniglot", loss, s), level, s, rng)


def test_report_gives_verdicts_over_seeds_and_a_partial_study_its_finished_part(tmp_path):
    config = config_from_dict(_raw())
    _study(tmp_path, "paper", {"arcface": 0.50, "triplet": 0.30, "contrastive": 0.499})
    PR.write_report(config, "paper", "omniglot", tmp_path)
    table = pd.read_csv(tmp_path / "omniglot" / "table.csv", index_col="loss")
    assert table.index[0] in {"arcface", "contrastive"} and int(table["seeds"].max()) == 3
    assert {"map@r_mdd", "map@r_diff_low"} <= set(table.columns)  # 3 seeds: verdict columns
    assert not table.loc["triplet", "map@r_tied"]  # 20 points below: below
    assert table.loc["contrastive", "map@r_tied"] or table.loc["contrastive", "map@r_best"]
    status = json.loads((tmp_path / "omniglot" / "status.json").read_text())
    assert status["done"]["main seeds"] == [0, 1, 2] and status["pending"] == {}
    findings = json.loads((tmp_path / "omniglot" / "findings.json").read_text())
    parts = findings["main"] + findings["ablations"] + findings["transfer"]
    assert findings["sentences"] == parts and len(set(parts)) == len(parts)  # each once
    assert findings["main"] and findings["main"][-1].startswith("3 seeds per loss")
    # a study stopped in its third seed: compared over the two seeds every loss has
    import shutil

    shutil.rmtree(PS.main_dir(tmp_path / "runs", "paper", "omniglot", "triplet", 2))
    PR.write_report(config, "paper", "omniglot", tmp_path)
    table = pd.read_csv(tmp_path / "omniglot" / "table.csv", index_col="loss")
    assert int(table["seeds"].max()) == 2 and "map@r_mdd" not in table.columns  # no verdict
    status = json.loads((tmp_path / "omniglot" / "status.json").read_text())
    assert status["done"]["main seeds"] == [0, 1] and status["pending"]["main"] == {"triplet": [2]}


def test_transfer_names_the_verdicts_the_other_profile_contradicts(tmp_path):
    config = config_from_dict(_raw())
    _study(tmp_path, "paper", {"arcface": 0.50, "triplet": 0.30, "contrastive": 0.40})
    PR.write_report(config, "paper", "omniglot", tmp_path, transfer="wide64")
    assert not (tmp_path / "omniglot" / "transfer.csv").exists()  # wide64 has not run
    status = json.loads((tmp_path / "omniglot" / "status.json").read_text())
    assert set(status["pending"]["transfer wide64"]) == set(LOSSES)
    _study(tmp_path, "wide64", {"arcface": 0.45, "triplet": 0.47, "contrastive": 0.30}, seeds=(0,))
    PR.write_report(config, "paper", "omniglot", tmp_path, transfer="wide64")
    t = pd.read_csv(tmp_path / "omniglot" / "transfer.csv", index_col="loss")
    assert t["contradicts"].to_dict() == {"arcface": False, "contrastive": False, "triplet": True}
    sentences = json.loads((tmp_path / "omniglot" / "findings.json").read_text())["sentences"]
    assert any("contradicts 1 paper-grade verdict(s): triplet" in s for s in sentences)
    assert any("Kendall τ = -0.33" in s and "one training run" in s for s in sentences)


def test_units_train_the_profile_and_refuse_what_the_study_does_not_define(tmp_path):
    raw = _raw(ablations=["m_per_class"])
    config = config_from_dict(raw)
    (u,) = PS.units(config, "wide64", "omniglot", 0, prepared_dir="p", loss="arcface")
    assert (u.settings.backbone, u.settings.embedding_dim) == ("convnet4", 64)
    assert u.compact == Path("studies/paper/results/runs/wide64/omniglot/arcface/seed0")
    (p,) = PS.units(config, "paper", "omniglot", 2, prepared_dir="p", loss="arcface")
    assert p.settings.backbone == config.datasets["omniglot"].train["backbone"]
    arms = PS.units(config, "paper", "omniglot", 1, prepared_dir="p", ablation="m_per_class")
    assert len(arms) == len(config.ablations["m_per_class"].arm_labels()) > 1
    assert {a.compact.parent.name for a in arms} == {"seed1"}
    with pytest.raises(ValueError, match=r"seed 7 is not in profiles\.paper\.seeds"):
        PS.units(config, "paper", "omniglot", 7, prepared_dir="p", loss="arcface")
    with pytest.raises(ValueError, match=r"'npair' is not in profiles\.paper\.losses"):
        PS.units(config, "paper", "omniglot", 0, prepared_dir="p", loss="npair")
    with pytest.raises(ValueError, match=r"no profiles\.papr; valid choices"):
        PS.units(config, "papr", "omniglot", 0, prepared_dir="p", loss="arcface")
    # the transfer stage: every loss of the paper study under wide64, not only the quick default's
    shipped = config_from_dict(yaml.safe_load((REPO / "params.yaml").read_text()))
    assert "npair" not in shipped.study.losses
    (t,) = PS.units(shipped, "wide64", "omniglot", 0, prepared_dir="p", loss="npair")
    assert (t.settings.loss, t.settings.backbone) == ("npair", "convnet4")


def test_stage_order_covers_every_stage_of_the_dvc_file():
    """run_study walks stage_order: a stage dvc.yaml defines and it misses would never run."""
    from dmlstudy.config import load_config

    config = load_config(REPO / "params.yaml")
    listed = subprocess.run(
        [sys.executable, "-m", "dvc", "stage", "list", PS.DVCFILE, "--name-only"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    order = PS.stage_order(config)
    assert sorted(order) == sorted(f"{PS.DVCFILE}:{n.split(':')[-1]}" for n in listed)
    main = [s for s in order if ":main@" in s]
    losses = config.for_profile("paper").study.losses  # every loss, not the quick default's
    assert len(main) == len(losses) * len(config.profiles["paper"].seeds) > len(config.study.losses)
    assert main[0].endswith("-0") and main[len(losses)].endswith("-1")  # seed-major
    assert order[-1].endswith("report@omniglot")


RUN = [sys.executable, "-m", "dmlstudy.execution.paper_study", "run", "params.yaml", "--commit"]


@pytest.fixture(scope="module")
def paper_repo(tiny_study, tmp_path_factory):
    """A copy of the tiny study with the paper profiles at tiny budgets, after ``make paper
    COMMIT=1`` (``paper_study run --commit``): (repo, env, the run's CompletedProcess)."""
    import shutil

    base, run_env, _ = tiny_study
    repo = tmp_path_factory.mktemp("paper") / "repo"
    # every process of the pipeline (stages, notebook kernels) imports this copy's package
    run_env = {**run_env, "PYTHONPATH": str(repo)}
    shutil.copytree(base, repo, symlinks=True)
    # the pipeline only: the committed study's lock and compact results are not the copy's
    (repo / "studies/paper").mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO / PS.DVCFILE, repo / PS.DVCFILE)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    tiny = params["profiles"]["tiny"]["train"]
    params["study"]["ablations"] = []
    params["profiles"]["paper"].update(train=dict(tiny), seeds=[0], ablation_seeds=[0])
    params["profiles"]["paper"]["ablations"] = []
    params["profiles"]["wide64"]["train"].update(tiny)
    params["tuning"].update(epochs_per_loss=4, confirm_top=1, confirm_seeds=[0, 1])
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git = ["git", "-C", str(repo)]
    subprocess.run([*git, "add", "-A"], check=True, env=run_env)
    subprocess.run([*git, "commit", "-qm", "paper profile"], check=True, env=run_env)
    # two stages side by side (the dask path); the fresh clone below runs them one at a time
    first = subprocess.run([*RUN, "--workers", "2"], cwd=repo, env=run_env, capture_output=True,
                           text=True)  # fmt: skip
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    return repo, run_env, first


def test_make_paper_commits_as_it_goes_and_a_fresh_clone_trains_nothing(paper_repo, tmp_path):
    """Each stage's compact folders and the lock are committed as the stage ends; a fresh clone
    of that history runs the same command and trains nothing (its compact folders hold the runs
    asked for)."""
    from tests.support.tiny_repo import dvc

    repo, run_env, first = paper_repo
    git = ["git", "-C", str(repo)]
    losses = yaml.safe_load((repo / "params.yaml").read_text())["profiles"]["paper"]["losses"]
    for profile in ("paper", "wide64"):
        for loss in losses:
            assert (
                repo / PS.main_dir(PS.RESULTS_ROOT / "runs", profile, "omniglot", loss, 0)
            ).is_dir()
    log = subprocess.run([*git, "log", "--format=%s"], capture_output=True, text=True).stdout
    assert log.count("paper study: main@") == len(losses)
    assert log.count("paper study: transfer@") == len(losses)
    assert "paper study: report@omniglot" in log
    # side by side: each stage's own output, and every stage recorded in the lock as it ended
    assert "2 workers" in first.stdout
    assert (repo / "work/paper/logs" / f"main@omniglot-{losses[0]}-0.log").is_file()
    lock = yaml.safe_load((repo / PS.DVCFILE).with_name("dvc.lock").read_text())["stages"]
    assert {f"main@omniglot-{loss}-0" for loss in losses} <= set(lock)
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "studies"],
        capture_output=True,
        text=True,
    ).stdout
    assert dirty == ""  # everything the study made is committed
    table = pd.read_csv(repo / "studies/paper/results/omniglot/table.csv", index_col="loss")
    assert set(table.index) == set(losses) and "map@r_mdd" not in table.columns  # one seed
    page = (repo / "reports/paper/omniglot.html").read_text()
    assert "Budget check:" in page and "stopped at" in page  # the committed check, shown

    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True, env=run_env)
    clone_env = {**run_env, "PYTHONPATH": str(clone)}
    again = subprocess.run(RUN, cwd=clone, env=clone_env, capture_output=True, text=True)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "trained, compact results" not in again.stdout
    assert not (clone / "work" / "paper").exists()  # no run folder: nothing was trained
    assert dvc(clone, clone_env, "status", PS.DVCFILE).stdout.strip().endswith("up to date.")


def test_make_compare_tunes_trains_and_reports_a_new_loss_without_retraining_the_others(
    paper_repo,
):
    """docs/adding-a-loss.md's loss, dropped into the study: `make compare LOSS=norm_softmax`
    tunes it with the campaign's budget, writes its winner into params.yaml, trains it on the
    paper seeds and reports it beside the committed losses, none of which is retrained."""
    import re

    repo, run_env, _ = paper_repo
    doc = (REPO / "docs" / "adding-a-loss.md").read_text()
    module = re.findall(r"```python\n(.*?)```", doc, flags=re.S)[0]
    (repo / "dmlstudy" / "losses" / "norm_softmax.py").write_text(module)
    snippet = yaml.safe_load(re.findall(r"```yaml\n(.*?)```", doc, flags=re.S)[0])
    params = yaml.safe_load((repo / "params.yaml").read_text())
    others = list(params["profiles"]["paper"]["losses"])
    params["profiles"]["paper"]["losses"].append("norm_softmax")  # compared in the paper study
    params["study"]["untuned"] = ["norm_softmax"]
    params["losses"]["norm_softmax"] = snippet["losses"]["norm_softmax"]
    params["tuning"]["space"]["norm_softmax"] = snippet["tuning"]["space"]["norm_softmax"]
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    cmd = [sys.executable, "-m", "dmlstudy.execution.compare_loss", "params.yaml"]
    proc = subprocess.run(
        [*cmd, "--loss", "norm_softmax"], cwd=repo, env=run_env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    after = yaml.safe_load((repo / "params.yaml").read_text())
    assert "omniglot" in after["losses"]["norm_softmax"]["per_dataset"]
    assert "norm_softmax" not in after["study"]["untuned"]
    trials = pd.read_csv(repo / "results/tuning/omniglot/trials.csv")
    assert set(others) < set(trials["loss"]) and "norm_softmax" in set(trials["loss"])  # merged
    table = pd.read_csv(repo / "studies/paper/results/omniglot/table.csv", index_col="loss")
    assert set(table.index) == {*others, "norm_softmax"}
    trained = re.findall(r"omniglot/(\w+)/seed\d+: trained", proc.stdout)
    assert trained == ["norm_softmax"]  # the study's losses: their committed compact results


def test_an_arm_that_trains_as_its_main_run_is_copied_not_trained(make_settings, tmp_path):
    from dmlstudy.analysis import compact
    from dmlstudy.training import train

    s = make_settings(tmp_path / "work" / "main", loss="contrastive", epochs=1)
    train(s)
    main = compact.export(s.out_dir, tmp_path / "results" / "main")
    arm = s.model_copy(update={"out_dir": tmp_path / "work" / "arm"})
    unit = PS.Unit("arm", arm, tmp_path / "results" / "arm", same_as=main)
    assert PS.train_units([unit]) == []  # copied
    assert not arm.out_dir.exists() and (tmp_path / "results" / "arm" / PER_QUERY_FILE).is_file()
    other = arm.model_copy(update={"embedding_dim": arm.embedding_dim // 2})  # another run
    unit = PS.Unit("other", other, tmp_path / "results" / "other", same_as=main)
    assert PS.train_units([unit]) == ["other"] and other.out_dir.is_dir()
    assert PS.train_units([unit]) == []  # its own compact folder is current now
