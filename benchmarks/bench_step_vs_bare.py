"""The study's training step against a bare PyTorch loop of the same network, loss and batch.

Study step: :func:`dmlstudy.training.epoch.train_epoch` (uint8 cache gather → batched device
augmentation → embedder → loss → backward → optimizer step, per-step seeding) as the study runs
it on this device ("study": batches made at :func:`~dmlstudy.training.datapath.default_depth`,
in the step on the CPU, 2 ahead in a background thread on CUDA), and with the other choice
("ahead": 2 ahead on the CPU; "inline": in the step on CUDA), for what the default gains. Bare
loop: the same model, loss and optimizer on float tensors already in memory (``model(x); loss;
backward; step``). The arms are timed in rotating blocks in one process, so load changes on a
shared machine hit all alike; study/bare (goal >= 0.9) is the data path's efficiency. The median
over blocks of each block's ratio is printed too (robust to a noisy neighbour). Prints figures;
asserts nothing::

    python benchmarks/bench_step_vs_bare.py --backbone convnet4 --threads 1 [--cpu-amp]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

from dmlstudy.data import build_sampler
from dmlstudy.losses import build_loss
from dmlstudy.models import build_embedder
from dmlstudy.training import TrainSettings
from dmlstudy.training.augment import Preprocess, default_mean_std
from dmlstudy.training.datapath import default_depth
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
    ap.add_argument("--image-size", type=int, default=28, help="training crop")
    ap.add_argument("--cache-size", type=int, default=None, help="cached images (default: crop)")
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--crop-min", type=float, default=1.0, help="resized crops of this area up")
    ap.add_argument("--max-shift", type=int, default=2, help="random shifts (px; Omniglot's 2)")
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
    cache = a.cache_size or a.image_size
    images = rng.integers(0, 256, (n_classes * per_class, cache, cache, a.channels), np.uint8)
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
        crop_scale=(a.crop_min, 1.0),
        crop_ratio=(1.0, 1.0) if a.crop_min == 1.0 else (3 / 4, 4 / 3),
        max_shift=a.max_shift,
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
            in_chans=a.channels,
            normalize=loss.normalize_embeddings,
        )
        model.to(memory_format=torch.channels_last).train()
        return model, loss, build_optimizer(model, loss, s)

    depth = default_depth(device)
    other = "inline" if depth else "ahead"  # the depth the study does not use on this device
    arms = {name: build() for name in ("study", other, "bare")}
    monitors = {name: DivergenceMonitor.from_state(a.loss, None) for name in arms}
    pre = Preprocess(a.image_size, cache, *default_mean_std(a.channels))
    batches = build_sampler(a.sampler, labels, a.batch_size, 4, 0).epoch_batches(0)
    xs = [
        torch.randn(a.batch_size, a.channels, a.image_size, a.image_size).contiguous(
            memory_format=torch.channels_last
        )
        for _ in range(4)
    ]
    ys = [torch.from_numpy(labels[b]) for b in batches[:4]]

    def study(block: int, name: str = "study") -> None:
        chunk = batches[(block * a.steps) % len(batches) :][: a.steps]
        model, loss, opt = arms[name]
        train_epoch(
            model=model,
            loss_fn=loss,
            optimizer=opt,
            images=images,
            rows=np.arange(len(images)),
            labels=labels,
            batches=chunk,
            preprocess=pre,
            settings=s,
            epoch=block,
            device=device,
            monitor=monitors[name],
            prefetch={"study": depth, "inline": 0, "ahead": 2}[name],
        )

    def alternative(block: int) -> None:
        study(block, other)

    def bare(block: int) -> None:
        bare_model, bare_loss, bare_opt = arms["bare"]
        for i in range(a.steps):
            with autocast(device, s.amp, s.cpu_amp):
                z = bare_model(xs[i % 4])
            value = bare_loss(z.float(), ys[i % 4])
            bare_opt.zero_grad(set_to_none=True)
            value.backward()
            bare_opt.step()

    fns = {"study": study, other: alternative, "bare": bare}
    for fn in fns.values():
        fn(0)  # warm-up (oneDNN primitive caches)
    spent: dict[str, list[float]] = {name: [] for name in fns}
    order = list(fns)
    for block in range(1, a.blocks + 1):
        for name in order[block % 3 :] + order[: block % 3]:  # rotate the order
            t = time.perf_counter()
            fns[name](block)
            spent[name].append(time.perf_counter() - t)
    images_done = a.blocks * a.steps * a.batch_size
    rate = {k: images_done / sum(v) for k, v in spent.items()}

    def median_ratio(num: str, den: str) -> float:
        return statistics.median(d / n for n, d in zip(spent[num], spent[den], strict=True))

    print(
        f"backbone={a.backbone} d={a.embedding_dim} batch={a.batch_size} loss={a.loss} "
        f"sampler={a.sampler} cache={cache}x{cache}x{a.channels} crop={a.image_size} "
        f"crop_min={a.crop_min} max_shift={a.max_shift} "
        f"threads={torch.get_num_threads()} cpu_amp={a.cpu_amp} load={os.getloadavg()[0]:.1f}"
    )
    print(
        f"study step (batches made {depth} ahead) {rate['study']:,.0f} img/s; {other} "
        f"({2 if other == 'ahead' else 0} ahead) {rate[other]:,.0f} img/s; bare loop "
        f"{rate['bare']:,.0f} img/s"
    )
    print(
        f"study/bare {rate['study'] / rate['bare']:.2f} (median of blocks "
        f"{median_ratio('study', 'bare'):.2f}); {other}/bare {rate[other] / rate['bare']:.2f} "
        f"({median_ratio(other, 'bare'):.2f}); study/{other} "
        f"{rate['study'] / rate[other]:.3f} ({median_ratio('study', other):.3f})"
    )


if __name__ == "__main__":
    main()
