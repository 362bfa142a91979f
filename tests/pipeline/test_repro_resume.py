"""A real ``dvc repro`` of a 3-epoch training, SIGKILLed (dvc, papermill and the kernel) right after
the first epoch's checkpoint; the rerun ``dvc repro`` resumes (epoch 0 is not trained again) and
ends with the result of an uninterrupted run, bit for bit.

The pause after the checkpoint comes from a ``sitecustomize`` on PYTHONPATH that wraps
``dmlstudy.training.checkpoint._replace`` in every process of the pipeline, so the kill lands at a
known point without any hook in the package. Needs the offline Omniglot archives.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from dmlstudy.config import load_config
from dmlstudy.study.runs import train_settings
from dmlstudy.training import train
from dmlstudy.training.checkpoint import load_checkpoint
from tests.support.tiny_repo import COPY, REPO, dvc
from tests.support.tiny_repo import env as _env

pytestmark = pytest.mark.slow  # two tiny `dvc repro` runs of one training: kernels are slow

STAGE = "train@omniglot-contrastive-0"
RUN = Path("work/runs/omniglot/contrastive/seed0")
HOLD = "DMLSTUDY_TEST_HOLD_AFTER_CHECKPOINT"

# Imported at start-up by every Python process of the pipeline: once the first checkpoint.pt is
# in place, write this process's pid to $HOLD and wait to be killed.
SITECUSTOMIZE = f"""
import importlib.abc, importlib.util, os, sys, time

class _Hold(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "dmlstudy.training.checkpoint" or not os.environ.get({HOLD!r}):
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        real_exec = spec.loader.exec_module

        def exec_module(module):
            real_exec(module)
            real_replace = module._replace

            def replace(tmp, path):
                real_replace(tmp, path)
                if path.name == "checkpoint.pt":
                    with open(os.environ[{HOLD!r}], "w") as f:
                        f.write(str(os.getpid()))
                    time.sleep(600)

            module._replace = replace

        spec.loader.exec_module = exec_module
        return spec

sys.meta_path.insert(0, _Hold())
"""


def _repo(tmp: Path) -> Path:
    repo = tmp / "repo"
    repo.mkdir()
    for name in COPY:
        src = REPO / name
        (repo / name).parent.mkdir(parents=True, exist_ok=True)  # e.g. results/tuning/README.md
        if src.is_dir():
            subprocess.run(["cp", "-r", str(src), str(repo / name)], check=True)
        else:
            (repo / name).write_bytes(src.read_bytes())
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["study"].update(
        losses=["contrastive"], seeds=[0], profile="tiny", ablations=[], multimodal=[]
    )
    # 3 short epochs; one thread so that the in-process reference run computes the same bits.
    params["profiles"]["tiny"]["train"].update(epochs=3, cpu_threads=1)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return repo


def _kill_after_first_checkpoint(repo: Path, env: dict[str, str], marker: Path) -> None:
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "dvc"), "repro", STAGE],
        cwd=repo,
        env={**env, HOLD: str(marker)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 900
    while not (marker.is_file() and marker.read_text()):
        if proc.poll() is not None or time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            out = proc.communicate()[0].decode(errors="replace")
            pytest.fail(f"dvc repro never reached the first checkpoint:\n{out[-4000:]}")
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # dvc, papermill ...
    os.kill(int(marker.read_text()), signal.SIGKILL)  # ... and the kernel (its own session)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL


def test_sigkilled_dvc_repro_resumes_and_matches_an_uninterrupted_run(
    tmp_path: Path, shared_omniglot_dir: Path
) -> None:
    repo = _repo(tmp_path)
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = _env(tmp_path, shared_omniglot_dir.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(hook), env.get("PYTHONPATH")) if p)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "t"]):
        subprocess.run(cmd, cwd=repo, env=env, check=True)
    dvc(repo, env, "init", "-q")

    _kill_after_first_checkpoint(repo, env, tmp_path / "held")
    killed = load_checkpoint(repo / RUN / "checkpoint.pt")["state"]
    assert killed["epoch"] == 0 and not (repo / RUN / "metrics.json").exists()

    rerun = dvc(repo, env, "repro", STAGE)
    assert f"Running stage '{STAGE}'" in rerun.stdout
    metrics = json.loads((repo / RUN / "metrics.json").read_text())
    # Epoch 0 comes from the killed run (same record, wall-clock included); 1 and 2 from the rerun.
    assert [h["session"] for h in metrics["history"]] == [0, 1, 1]
    assert metrics["history"][0] == killed["history"][0]
    assert json.loads(dvc(repo, env, "status", "--json", STAGE).stdout or "{}") == {}

    settings = train_settings(
        load_config(repo / "params.yaml"),
        "omniglot",
        "contrastive",
        0,
        prepared_dir=repo / "work/prepared/omniglot",
        out_dir=tmp_path / "uninterrupted",
    )
    ref = train(settings)
    assert [h["session"] for h in ref["history"]] == [0, 0, 0]
    assert [h["loss"] for h in metrics["history"]] == [h["loss"] for h in ref["history"]]
    assert [h["val"] for h in metrics["history"]] == [h["val"] for h in ref["history"]]
    assert metrics["test"] == ref["test"] and metrics["best_epoch"] == ref["best_epoch"]
    for split in ("val", "test"):
        np.testing.assert_array_equal(
            np.load(repo / RUN / f"embeddings_{split}.npz")["embeddings"],
            np.load(settings.out_dir / f"embeddings_{split}.npz")["embeddings"],
        )
