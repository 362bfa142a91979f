"""The fan-out's parts: reading the training stages from DVC, building the settings the stages
build, and training runs on a real dask LocalCluster (two worker processes) — failures reported
with their run and root error, interrupted runs resumed, finished runs reused, a killed worker's
run resumed from its checkpoint, one GPU per worker."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from dmlstudy.config import load_config
from dmlstudy.execution import fanout_cluster as fc
from dmlstudy.execution.fanout import read_pipeline, report, retrained
from dmlstudy.execution.fanout_plan import PLANNERS, StageRuns, stage_runs
from dmlstudy.execution.fanout_workers import RunResult, describe
from dmlstudy.study.runs import train_settings
from dmlstudy.training import TrainSettings, train
from tests.support.tiny_repo import LOSSES, REPO, env, make_repo

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:dvc")

# --- which runs, with which settings ---------------------------------------------------------


def test_training_stages_and_their_settings_are_the_stages_own(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, env(tmp_path, tmp_path / "no-data"))
    training, upstream = read_pipeline(repo)
    assert upstream == ["check_params", "fingerprint", "prepare@omniglot"]
    assert set(training) == {
        *(f"train@omniglot-{loss}-0" for loss in LOSSES),
        "ablation@omniglot-m_per_class",
        "multimodal@omniglot",
    }
    config = load_config(repo / "params.yaml")
    plans = {name: stage_runs(name, *training[name]) for name in training}
    prepared = "work/prepared/omniglot"
    for loss in LOSSES:  # the paths dvc.yaml gives the notebook, written out by hand
        (s,) = plans[f"train@omniglot-{loss}-0"].settings
        out = f"work/runs/omniglot/{loss}/seed0"
        assert s == train_settings(config, "omniglot", loss, 0, prepared_dir=prepared, out_dir=out)
    ablation = plans["ablation@omniglot-m_per_class"].settings
    assert [(s.out_dir.as_posix(), s.m_per_class) for s in ablation] == [
        (f"work/ablations/omniglot/m_per_class/m_per_class={m}/seed0", m) for m in (2, 4)
    ]
    multimodal = plans["multimodal@omniglot"].settings
    assert [(s.out_dir.as_posix(), s.label_level) for s in multimodal] == [
        (f"work/multimodal/omniglot/{loss}/seed0", "coarse") for loss in LOSSES
    ]
    assert all(p.wdir == repo for p in plans.values())
    assert stage_runs("x", "python -m dmlstudy.study.check_params params.yaml", repo) is None


def test_every_training_notebook_has_a_planner_calling_what_it_calls() -> None:
    """A notebook that trains must be known to the fan-out, through the same call (else its
    stage would not reuse the runs the fan-out trained)."""
    calls = {
        "notebooks/train.py": "train_settings(config, dataset, loss, seed, prepared_dir="
        "prepared_dir, out_dir=out_dir)",
        "notebooks/ablation.py": "A.run(config, dataset, ablation, prepared_dir=prepared_dir, "
        "runs_dir=runs_dir)",
        "notebooks/multimodal.py": "M.run(config, dataset, prepared_dir=prepared_dir, "
        "runs_dir=runs_dir)",
    }
    assert set(calls) == set(PLANNERS)
    for nb in sorted((REPO / "notebooks").glob("*.py")):
        text = " ".join(nb.read_text().split())
        trains = re.search(r"\btrain\(|\b[AM]\.run\(|launcher", text)
        name = f"notebooks/{nb.name}"
        assert bool(trains) == (name in PLANNERS), name
        if name in calls:
            assert calls[name] in text, name


# --- the dask side -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client():
    """Two worker processes, pinned to (stand-in) GPUs 5 and 7; the runs here use the CPU."""
    before = os.environ.get("OMP_NUM_THREADS")
    with fc.open_client(2, None, ["5", "7"]) as c:
        assert os.environ.get("OMP_NUM_THREADS") == before  # dask's default would set it to 1
        yield c


def stage(name: str, *runs: TrainSettings) -> StageRuns:
    return StageRuns(name, REPO, runs)


def test_runs_equal_serial_ones_and_a_failure_names_its_run_and_root_error(
    client, make_settings, tmp_path: Path
) -> None:
    good = [make_settings(tmp_path / f"seed{k}", seed=k) for k in (0, 1)]
    bad = make_settings(tmp_path / "bad", prepared_dir=tmp_path / "missing")
    done, failed = fc.train_runs(client, [stage("a", *good), stage("b", bad)], threads=1)
    assert sorted(r.out_dir for r in done) == [str(s.out_dir) for s in good]
    assert not any(r.reused for r in done)
    (f,) = failed
    assert f.stage == "b" and f.run == f"b ({tmp_path / 'bad'})"
    assert f.root.startswith("FileNotFoundError") and "missing" in f.root
    assert "Traceback" in f.details or "File " in f.details
    serial = train(good[0].model_copy(update={"out_dir": tmp_path / "serial"}))
    fanned = json.loads((tmp_path / "seed0" / "metrics.json").read_text())
    assert fanned["test"] == serial["test"]
    assert [h["loss"] for h in fanned["history"]] == [h["loss"] for h in serial["history"]]
    np.testing.assert_array_equal(
        np.load(tmp_path / "seed0" / "embeddings_test.npz")["embeddings"],
        np.load(tmp_path / "serial" / "embeddings_test.npz")["embeddings"],
    )


def test_an_interrupted_run_resumes_and_a_finished_one_is_reused(
    client, make_settings, tmp_path: Path
) -> None:
    s = make_settings(tmp_path / "run", epochs=3)
    train(s, _stop_after_epoch=0)
    (first,), _ = fc.train_runs(client, [stage("a", s)], threads=1)
    history = json.loads((s.out_dir / "metrics.json").read_text())["history"]
    assert not first.reused and [h["session"] for h in history] == [0, 1, 1]
    (again,), _ = fc.train_runs(client, [stage("a", s)], threads=1)
    assert again.reused and again.digest == first.digest


def test_a_killed_worker_s_run_resumes_from_its_checkpoint(
    client, make_settings, tmp_path: Path
) -> None:
    marker = tmp_path / "killed"

    def die_after_first_checkpoint() -> None:  # runs in each worker process
        import dmlstudy.training.loop as loop

        real = loop.atomic_save

        def save(obj, path):
            real(obj, path)
            if Path(path).name == "checkpoint.pt" and not marker.exists():
                marker.touch()
                os._exit(1)  # the worker process dies; its nanny starts a fresh one

        loop.atomic_save = save

    client.run(die_after_first_checkpoint)
    s = make_settings(tmp_path / "run", epochs=3)
    (r,), failed = fc.train_runs(client, [stage("a", s)], threads=1)
    assert marker.exists() and not failed and not r.reused
    history = json.loads((s.out_dir / "metrics.json").read_text())["history"]
    assert [h["session"] for h in history] == [0, 1, 1]
    client.wait_for_workers(2)  # the nanny's fresh process, for the next tests


def test_workers_must_see_the_repository_and_run_its_code(client, monkeypatch, tmp_path) -> None:
    assert len(fc.check_workers(client, REPO)) == 2
    with pytest.raises(fc.FanoutError, match="cannot see the repository"):
        fc.check_workers(client, tmp_path)
    monkeypatch.setattr(fc, "code_fingerprint", lambda: "0" * 16)
    with pytest.raises(fc.FanoutError, match="differs from this checkout's"):
        fc.check_workers(client, REPO)


def test_the_workers_of_a_running_scheduler_train_with_their_cores(
    client, make_settings, tmp_path: Path
) -> None:
    s = make_settings(tmp_path / "run", cpu_threads=None)
    with fc.open_client(2, client.scheduler.address, []) as remote:
        (r,), failed = fc.train_runs(remote, [stage("a", s)], threads=None)
    assert not failed and not r.reused and (s.out_dir / "metrics.json").is_file()


def test_one_gpu_per_worker(client) -> None:
    seen = fc.check_workers(client, REPO)
    assert sorted(w["cuda_visible_devices"] for w in seen.values()) == ["5", "7"]
    with pytest.raises(fc.FanoutError, match="--workers 3 on a machine with 2 visible GPU"):
        fc.worker_envs(3, ["0", "1"])


# --- what is reported --------------------------------------------------------------------------


def test_failures_name_the_run_and_the_root_error() -> None:
    from distributed.scheduler import KilledWorker

    try:
        try:
            raise FileNotFoundError("work/prepared/omniglot/meta.json")
        except FileNotFoundError as e:
            raise RuntimeError("could not load") from e
    except RuntimeError as e:
        f = fc.failure("train@x", "train@x (r)", describe("train@x (r)", e))
    assert f.root == "FileNotFoundError: work/prepared/omniglot/meta.json"
    killed = fc.failure("s", "s (r)", KilledWorker("key", None, 3))  # type: ignore[arg-type]
    assert killed.run == "s (r)" and "next launch resumes" in killed.root
    text = report([f, killed], 6)
    assert text.startswith("2 of 6 training run(s) failed")
    assert "  train@x (r)\n    root error: FileNotFoundError" in text


def test_a_run_trained_again_by_its_stage_is_detected(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text("{}")
    plans = [StageRuns("s", tmp_path, ())]
    from dmlstudy.execution.fanout_workers import metrics_digest

    result = RunResult("s", "run", False, 1.0, metrics_digest(run), {}, "h")
    assert retrained(plans, [result]) == []
    (run / "metrics.json").write_text('{"again": 1}')
    assert retrained(plans, [result]) == ["run"]
