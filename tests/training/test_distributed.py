"""One run over 2 CPU processes (torchrun, gloo) equals the single-process run on the same global
batches: model and loss parameters to 1e-5 (SGD, so a gradient scaled by the world size would
show; freeze_bn, as torch's SyncBatchNorm needs an accelerator), for a pair loss and a proxy
loss; a run interrupted in one process resumes under torchrun through a warm-up's end."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from dmlstudy.training import TrainSettings, train
from dmlstudy.training.augment import Preprocess, step_generator, train_transform
from dmlstudy.training.checkpoint import load_checkpoint
from dmlstudy.training.distributed import Ranks, check_shardable

REPO = Path(__file__).resolve().parents[2]


def _env(**extra: str) -> dict[str, str]:
    path = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", **extra}


def _torchrun(runs: list[TrainSettings], tmp: Path) -> str:
    """``torchrun --standalone --nproc-per-node 2 -m dmlstudy.execution.ddp_train --settings``."""
    paths = []
    for i, s in enumerate(runs):
        paths.append(tmp / f"run{i}.json")
        paths[-1].write_text(s.model_dump_json())
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    cmd += ["-m", "dmlstudy.execution.ddp_train", "--settings", *map(str, paths)]
    done = subprocess.run(cmd, cwd=tmp, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def _assert_same_run(ddp: Path, single: Path) -> None:
    a, b = load_checkpoint(ddp / "checkpoint.pt"), load_checkpoint(single / "checkpoint.pt")
    for part in ("model_state", "loss_state"):
        assert a[part].keys() == b[part].keys()
        for key in a[part]:
            torch.testing.assert_close(a[part][key], b[part][key], rtol=1e-5, atol=1e-5, msg=key)
    losses = [[h["loss"] for h in c["state"]["history"]] for c in (a, b)]
    np.testing.assert_allclose(*losses, rtol=1e-5)
    assert a["state"]["epoch"] == b["state"]["epoch"]


@pytest.fixture
def ddp_settings(make_settings: Callable[..., TrainSettings]) -> Callable[..., TrainSettings]:
    def make(out_dir: Path, **overrides: object) -> TrainSettings:
        base = dict(optimizer="sgd", lr=0.01, freeze_bn=True, hflip=True, max_shift=1)
        return make_settings(out_dir, max_steps_per_epoch=3, **{**base, **overrides})

    return make


def test_ddp_equals_one_process_and_resumes(
    ddp_settings: Callable[..., TrainSettings], tmp_path: Path
) -> None:
    # pair loss, m-per-class batches (2 classes of 4 per process); epoch 0 ran in one process
    # ("killed"), the warm-up ends under DDP, so DDP is rebuilt with the backbone's parameters
    ms = dict(loss="multi_similarity", epochs=3, warmup_epochs=2)
    train(ddp_settings(tmp_path / "ms1", **ms))
    resumed = ddp_settings(tmp_path / "ms2", **ms)
    assert train(resumed, _stop_after_epoch=0) == {"interrupted_after_epoch": 0}
    # proxy loss (proxies at 100 x lr), random batches, from scratch under DDP
    pa = dict(loss="proxy_anchor", sampler="random", loss_params={"proxy_lr_multiplier": 100.0})
    train(ddp_settings(tmp_path / "pa1", **pa))

    out = json.loads(_torchrun([resumed, ddp_settings(tmp_path / "pa2", **pa)], tmp_path))
    _assert_same_run(tmp_path / "ms2", tmp_path / "ms1")
    _assert_same_run(tmp_path / "pa2", tmp_path / "pa1")
    assert out[str(tmp_path / "ms2")]["epochs_run"] == 3  # rank 0 alone printed the metrics
    assert load_checkpoint(tmp_path / "ms2" / "checkpoint.pt")["state"]["session"] == 1
    names = {p.name for p in (tmp_path / "pa2").iterdir()}
    assert {"metrics.json", "best.pt", "embeddings_test.npz", "dvclive"} <= names


PRIMITIVES = textwrap.dedent(
    """
    import json
    import torch, torch.distributed as dist
    from dmlstudy.training.distributed import Ranks, check_in_sync
    dist.init_process_group("gloo")
    ranks = Ranks(dist.get_rank(), dist.get_world_size())
    out = {}
    # gather: the global batch in rank order; backward gives this share's gradient x world size
    local = (torch.arange(3.0) + 10 * ranks.rank).requires_grad_()
    every = ranks.gather(local)
    (every * torch.arange(6.0)).sum().backward()
    out["gathered"], out["grad"] = every.tolist(), local.grad.tolist()
    out["agree"] = ranks.agree(torch.tensor([[1.0, 2.0], [3.0 + ranks.rank, 4.0]])).tolist()
    out["on_main"] = ranks.on_main(lambda: {"rank": ranks.rank})
    torch.manual_seed(0)
    net = torch.nn.Linear(2, 2)
    check_in_sync([net], ranks)
    with torch.no_grad():
        net.bias.fill_(ranks.rank)
    try:
        check_in_sync([net], ranks)
    except RuntimeError as err:
        out["out_of_sync"] = str(err)
    json.dump(out, open(f"rank{ranks.rank}.json", "w"))
    dist.destroy_process_group()
    """
)


def test_gather_agree_broadcast_and_sync_check(tmp_path: Path) -> None:
    """Two processes with torchrun's environment (without the launcher: faster)."""
    (tmp_path / "primitives.py").write_text(PRIMITIVES)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    env = dict(MASTER_ADDR="127.0.0.1", MASTER_PORT=port, WORLD_SIZE="2")
    procs = [
        subprocess.Popen(
            [sys.executable, "primitives.py"],
            cwd=tmp_path,
            env=_env(**env, RANK=str(r), LOCAL_RANK=str(r)),
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in (0, 1)
    ]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(errors)
    for rank in (0, 1):
        out = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert out["gathered"] == [0.0, 1.0, 2.0, 10.0, 11.0, 12.0]
        assert out["grad"] == [2.0 * w for w in range(3 * rank, 3 * rank + 3)]
        assert out["agree"] == [[1.0, 2.0], [3.5, 4.0]]  # rank 0's losses, mean norms
        assert out["on_main"] == {"rank": 0}
        assert "differ between rank 0 and rank 1" in out["out_of_sync"]


def test_share_keeps_classes_whole_or_says_what_to_change() -> None:
    assert [Ranks(r, 3).share(12) for r in range(3)] == [slice(0, 4), slice(4, 8), slice(8, 12)]
    with pytest.raises(ValueError, match="cannot be split evenly over 3"):
        Ranks(0, 3).share(8)
    check_shardable(120, "m_per_class", 4, 2)
    check_shardable(120, "random", 4, 8)
    with pytest.raises(ValueError, match="divisible by the number of processes"):
        check_shardable(120, "random", 4, 7)
    with pytest.raises(ValueError, match="use a batch_size divisible by 16"):
        check_shardable(120, "m_per_class", 4, 4)  # 30 images per process: classes split


def test_shares_are_augmented_as_the_whole_batch() -> None:
    images = torch.randint(0, 256, (8, 20, 20, 1), dtype=torch.uint8)
    pre = Preprocess(16, 20, (0.5,), (0.5,))
    kw = dict(scale=(0.3, 1.0), ratio=(0.75, 1.33), hflip=True, shift=2)
    whole = train_transform(images, pre, generator=step_generator(0, 1, 2), **kw)
    shares = [
        train_transform(images[r], pre, generator=step_generator(0, 1, 2), part=(r.start, 8), **kw)
        for r in (Ranks(0, 2).share(8), Ranks(1, 2).share(8))
    ]
    torch.testing.assert_close(torch.cat(shares), whole, rtol=0, atol=1e-6)  # per-sample ops
    with pytest.raises(ValueError, match="does not hold a share"):
        train_transform(images, pre, generator=step_generator(0, 1, 2), part=(4, 8), **kw)
