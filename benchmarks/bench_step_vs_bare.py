"""The study's training step against a bare PyTorch loop of the same network, loss and batch.

Study step: :func:`dmlstudy.training.epoch.train_epoch` (uint8 cache gather → batched device
augmentation → embedder → loss → backward → optimizer step, per-step seeding). Bare loop: the same
model, loss and optimizer on float tensors already in memory (``model(x); loss; backward;
step``). The two are timed in alternating blocks in one process, so load changes on a shared
machine hit both alike; the ratio (goal >= 0.9) is the data path's efficiency. Prints figures;
asserts nothing::

    python benchmarks/bench_step_vs_bare.py --backbone convnet4 --threads 2 [--cpu-amp]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from dmlstudy.data import build_sampler
from dmlstudy.losses import build_loss
from dmlstudy.models import build_embedder
from dmlstudy.training import TrainSettings
from dmlstudy.training.augment import Preprocess, default_mean_std
from dmlstudy.training.divergence import DivergenceMonitor
from dmlstudy.training.epoch import train_epoch
from dmlstudy.training.inference import autocast
from dmlstudy.training.optim import build_optimizer


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--backbone", default="convnet4")
    ap.add_argument("--embedding-dim", type=int, default=64)
    ap.add_argument("--image-size", type=int, default=28)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--loss", default="cosface")
    ap.add_argument("--sampler", default="random", choices=["random", "m_per_class"])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--cpu-amp", action="store_true", help="bf16 autocast on the CPU (both)")
    ap.add_argument("--blocks", type=int, default=8, help="alternating timed blocks")
    ap.add_argument("--steps", type=int, default=6, help="steps per block")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device("cpu")
    n_classes, per_class = 400, 20
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n_classes * per_class, a.image_size, a.image_size, 1), np.uint8)
    labels = np.repeat(np.arange(n_classes), per_class)
    s = TrainSettings(
        prepared_dir=".",
        out_dir=".",
        loss=a.loss,
        backbone=a.backbone,
        device="cpu",
        image_size=a.image_size,
        embedding_dim=a.embedding_dim,
        batch_size=a.batch_size,
        sampler=a.sampler,
        crop_scale=(0.7, 1.0),
        hflip=False,
        cpu_amp=a.cpu_amp,
        progress=False,
        optimizer="adam",
        weight_decay=0.0,
        lr=1e-3,
    )

    def build() -> tuple[torch.nn.Module, torch.nn.Module, torch.optim.Optimizer]:
        torch.manual_seed(0)
        loss = build_loss(a.loss, num_classes=n_classes, embedding_dim=a.embedding_dim)
        model = build_embedder(
            a.backbone,
            embedding_dim=a.embedding_dim,
            in_chans=1,
            normalize=loss.normalize_embeddings,
        )
        model.to(memory_format=torch.channels_last).train()
        return model, loss, build_optimizer(model, loss, s)

    study_model, study_loss, study_opt = build()
    monitor = DivergenceMonitor.from_state(a.loss, None)
    bare_model, bare_loss, bare_opt = build()
    pre = Preprocess(a.image_size, a.image_size, *default_mean_std(1))
    batches = build_sampler(a.sampler, labels, a.batch_size, 4, 0).epoch_batches(0)
    xs = [
        torch.randn(a.batch_size, 1, a.image_size, a.image_size).contiguous(
            memory_format=torch.channels_last
        )
        for _ in range(4)
    ]
    ys = [torch.from_numpy(labels[b]) for b in batches[:4]]

    def study(block: int) -> None:
        chunk = batches[(block * a.steps) % len(batches) :][: a.steps]
        train_epoch(
            model=study_model,
            loss_fn=study_loss,
            optimizer=study_opt,
            images=images,
            rows=np.arange(len(images)),
            labels=labels,
            batches=chunk,
            preprocess=pre,
            settings=s,
            epoch=block,
            device=device,
            monitor=monitor,
        )

    def bare(block: int) -> None:
        for i in range(a.steps):
            with autocast(device, s.amp, s.cpu_amp):
                z = bare_model(xs[i % 4])
            value = bare_loss(z.float(), ys[i % 4])
            bare_opt.zero_grad(set_to_none=True)
            value.backward()
            bare_opt.step()

    study(0), bare(0)  # warm-up (oneDNN primitive caches)
    spent = {"study": 0.0, "bare": 0.0}
    for block in range(1, a.blocks + 1):
        for name, fn in (("study", study), ("bare", bare))[:: 1 if block % 2 else -1]:
            t = time.perf_counter()
            fn(block)
            spent[name] += time.perf_counter() - t
    images_done = a.blocks * a.steps * a.batch_size
    rate = {k: images_done / v for k, v in spent.items()}
    print(
        f"backbone={a.backbone} d={a.embedding_dim} batch={a.batch_size} loss={a.loss} "
        f"sampler={a.sampler} threads={torch.get_num_threads()} cpu_amp={a.cpu_amp} "
        f"load={os.getloadavg()[0]:.1f}"
    )
    print(
        f"study step {rate['study']:,.0f} img/s; bare loop {rate['bare']:,.0f} img/s; "
        f"ratio {rate['study'] / rate['bare']:.2f}"
    )


if __name__ == "__main__":
    main()
