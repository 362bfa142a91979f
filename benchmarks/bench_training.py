"""Training throughput (images/s) of the real training step: uint8 cache → device augmentation →
embedder → loss → backward → optimizer step (dmlstudy.training.epoch.train_epoch).

Prints figures; asserts nothing.  Examples::

    python benchmarks/bench_training.py   # convnet4_050, Omniglot settings (28 px, b128, CPU)
    python benchmarks/bench_training.py --cpu-amp --threads 1   # as the paper study's runs
    python benchmarks/bench_training.py --backbone convnet4   # the 64-channel ConvNet
    python benchmarks/bench_training.py --device cuda --backbone resnet50 --image-size 224 \
        --cache-size 256 --channels 3 --batch-size 128 --embedding-dim 512   # bf16 + channels_last
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from dmlstudy.losses import build_loss
from dmlstudy.models import build_embedder
from dmlstudy.training import TrainSettings
from dmlstudy.training.augment import Preprocess, default_mean_std
from dmlstudy.training.divergence import DivergenceMonitor
from dmlstudy.training.epoch import train_epoch
from dmlstudy.training.inference import resolve_device
from dmlstudy.training.optim import build_optimizer


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--backbone", default="convnet4_050", help="timm name (the Omniglot preset's by default)"
    )
    ap.add_argument("--image-size", type=int, default=28, help="training crop")
    ap.add_argument(
        "--cache-size", type=int, default=None, help="cached image side (default: image size)"
    )
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--m-per-class", type=int, default=4)
    ap.add_argument("--embedding-dim", type=int, default=32, help="<= the backbone width")
    ap.add_argument("--loss", default="multi_similarity")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    ap.add_argument("--no-amp", action="store_true", help="disable bf16 autocast on CUDA")
    ap.add_argument(
        "--cpu-amp", action="store_true", help="bf16 autocast on the CPU (the study's cpu_amp)"
    )
    ap.add_argument("--no-channels-last", action="store_true")
    ap.add_argument("--steps", type=int, default=20, help="timed steps")
    ap.add_argument("--warmup-steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    device = resolve_device(a.device)
    cache = a.cache_size or a.image_size
    n_classes = max(a.batch_size // a.m_per_class * 2, 8)
    per_class = 8
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n_classes * per_class, cache, cache, a.channels), dtype=np.uint8)
    labels = np.repeat(np.arange(n_classes), per_class)
    s = TrainSettings(
        prepared_dir=".",
        out_dir=".",
        loss=a.loss,
        backbone=a.backbone,
        image_size=a.image_size,
        eval_resize=cache,
        batch_size=a.batch_size,
        m_per_class=a.m_per_class,
        embedding_dim=a.embedding_dim,
        device=a.device,
        amp=not a.no_amp,
        cpu_amp=a.cpu_amp,
        channels_last=not a.no_channels_last,
        progress=False,
        hflip=a.channels == 3,
    )
    loss = build_loss(a.loss, num_classes=n_classes, embedding_dim=a.embedding_dim).to(device)
    model = build_embedder(
        a.backbone,
        embedding_dim=a.embedding_dim,
        in_chans=a.channels,
        normalize=loss.normalize_embeddings,
    ).to(device)
    if s.channels_last:
        model.to(memory_format=torch.channels_last)
    opt = build_optimizer(model, loss, s)
    mean, std = default_mean_std(a.channels)
    pre = Preprocess(a.image_size, cache, mean, std)

    def batches(n: int, offset: int) -> list[np.ndarray]:
        out = []
        for i in range(n):
            r = np.random.default_rng([offset, i])
            cls = r.choice(n_classes, a.batch_size // a.m_per_class, replace=False)
            out.append(
                (
                    cls[:, None] * per_class + r.integers(0, per_class, (len(cls), a.m_per_class))
                ).ravel()
            )
        return out

    kw = dict(
        model=model.train(),
        loss_fn=loss,
        optimizer=opt,
        images=images,
        rows=np.arange(len(images)),
        labels=labels,
        preprocess=pre,
        settings=s,
        device=device,
        monitor=DivergenceMonitor.from_state(a.loss, None),
    )
    train_epoch(batches=batches(a.warmup_steps, 0), epoch=0, **kw)
    t0, c0 = time.perf_counter(), time.process_time()
    stats = train_epoch(batches=batches(a.steps, 1), epoch=1, **kw)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    amp = s.amp if device.type == "cuda" else s.cpu_amp
    print(
        f"backbone={a.backbone} image={a.image_size}px cache={cache}px channels={a.channels} "
        f"batch={a.batch_size} loss={a.loss} device={device} bf16={amp} "
        f"threads={torch.get_num_threads()}"
    )
    print(
        f"{a.steps} steps: {stats.images / wall:,.0f} images/s wall ({wall / a.steps * 1000:.1f} "
        f"ms/step); {stats.images / cpu:,.0f} images per CPU-second (process CPU time {cpu:.1f} s; "
        "less sensitive to other processes on a shared machine); load average "
        f"{os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
