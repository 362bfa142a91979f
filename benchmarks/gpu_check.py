"""THE one command to run on a lent GPU (one H100/H200; sized to finish within 5 minutes), from
the repository root::

    python benchmarks/gpu_check.py [--json gpu_check.json]

It prints, measured side by side in one run, with the study's own settings (``params.yaml``,
dataset ``sop``: ResNet-50, 224 px crops from a 256 px uint8 cache, batch 120, bf16 autocast,
channels_last, deterministic algorithms; random weights, as throughput does not depend on them):

* correctness of the CUDA data path: batches made ahead on the side stream train bit-identically
  to batches made in the step, and embed identically (a missing stream wait would show here);
* training images/s of the study (``train_epoch`` from the uint8 cache) against the same model,
  loss and optimizer on synthetic tensors already on the GPU: the data path's efficiency (goal
  study/bare >= 0.9) and the absolute rate (goal >= 4,250 img/s); host syncs per study step;
* embedding images/s (``embed_images``, the evaluation path);
* the k-NN time of SOP-sized embeddings (60,502 x 512, k = 11 = SOP's largest R) with
  ``dmlstudy.evaluation.knn``.

``--compile`` adds the torch.compile'd study step (compile time and img/s). ``--tiny`` runs every
part at tiny sizes on the CPU (tests/test_gpu_check.py: CI proves it runs). Figures
are printed, and returned as a dict by ``main``; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dmlstudy.config import load_config
from dmlstudy.data import build_sampler
from dmlstudy.evaluation import knn
from dmlstudy.losses import build_loss
from dmlstudy.losses.interface import labels_checked_on_host
from dmlstudy.models import build_embedder
from dmlstudy.study.runs import train_overrides
from dmlstudy.training import TrainSettings
from dmlstudy.training.augment import Preprocess, default_mean_std
from dmlstudy.training.divergence import DivergenceMonitor
from dmlstudy.training.epoch import train_epoch
from dmlstudy.training.inference import autocast, embed_images, resolve_device
from dmlstudy.training.loop import deterministic
from dmlstudy.training.optim import build_optimizer

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(backbone="convnet4", image_size=28, eval_resize=32, embedding_dim=16, batch_size=16)
#: Full and tiny sizes: cached images, classes, timed blocks x steps per arm, k-NN rows x dim.
SIZES = {
    "full": dict(images=6000, cache=256, blocks=4, steps=50, knn=(60_502, 512)),
    "tiny": dict(images=192, cache=32, blocks=2, steps=3, knn=(600, 16)),
}
KNN_K = 11  # SOP: classes of 2..12 images, so R <= 11 and evaluate() searches k = 11


def settings(a: argparse.Namespace) -> TrainSettings:
    """The study's settings for ``a.dataset`` / ``a.loss`` (params.yaml), without downloads."""
    values = train_overrides(load_config(a.params), a.dataset, a.loss)
    values.update(pretrained=False, warmup_epochs=0, progress=False, device=a.device)
    if a.tiny:
        values.update(TINY)
    if a.batch_size:
        values["batch_size"] = a.batch_size
    return TrainSettings(prepared_dir=".", out_dir=".", loss=a.loss, **values)


class Cache:
    """A synthetic uint8 cache (4 images per class) and one epoch of the sampler's batches."""

    def __init__(self, s: TrainSettings, size: dict[str, Any]) -> None:
        n, side = size["images"], size["cache"]
        self.images = np.random.default_rng(0).integers(0, 256, (n, side, side, 3), np.uint8)
        self.labels = np.arange(n) // 4
        self.rows = np.arange(n)
        self.classes = int(self.labels.max()) + 1
        self.pre = Preprocess(s.image_size, s.eval_resize or s.image_size, *default_mean_std(3))
        sampler = build_sampler(s.sampler, self.labels, s.batch_size, s.m_per_class, s.seed)
        self.batches = sampler.epoch_batches(0)


class Arm:
    """Model, loss and optimizer built as the trainer builds them (same seed: same weights)."""

    def __init__(self, s: TrainSettings, cache: Cache, device: torch.device) -> None:
        self.s, self.cache, self.device = s, cache, device
        torch.manual_seed(s.seed)
        self.loss = build_loss(
            s.loss, num_classes=cache.classes, embedding_dim=s.embedding_dim, **s.loss_params
        )
        self.model = build_embedder(
            s.backbone,
            embedding_dim=s.embedding_dim,
            in_chans=3,
            pooling=s.pooling,
            layer_norm=s.layer_norm,
            normalize=self.loss.normalize_embeddings,
        )
        self.model.to(device)
        self.loss.to(device)
        if s.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.optimizer = build_optimizer(self.model, self.loss, s)
        self.monitor = DivergenceMonitor(s.loss)
        self.block = 0

    def study(self, steps: int, prefetch: int | None = None) -> float:
        """Seconds for ``steps`` training steps of the study's path (``train_epoch``)."""
        c = self.cache
        chunk = [c.batches[(self.block * steps + i) % len(c.batches)] for i in range(steps)]
        self.block += 1
        t = time.perf_counter()
        train_epoch(
            model=self.model,
            loss_fn=self.loss,
            optimizer=self.optimizer,
            images=c.images,
            rows=c.rows,
            labels=c.labels,
            batches=chunk,
            preprocess=c.pre,
            settings=self.s,
            epoch=self.block,
            device=self.device,
            monitor=self.monitor,
            prefetch=prefetch,
        )
        return time.perf_counter() - t

    def bare(self, steps: int) -> float:
        """Seconds for ``steps`` steps of the same model on tensors already on the device."""
        b, side = self.s.batch_size, self.s.image_size
        fmt = torch.channels_last if self.s.channels_last else torch.contiguous_format
        x = torch.randn(b, 3, side, side, device=self.device).contiguous(memory_format=fmt)
        y = torch.from_numpy(self.cache.labels[self.cache.batches[0]]).to(self.device)
        self._sync()
        t = time.perf_counter()
        with labels_checked_on_host(self.cache.classes):  # as the study: no label sync per step
            for _ in range(steps):
                with autocast(self.device, self.s.amp, self.s.cpu_amp):
                    z = self.model(x)
                value = self.loss(z.float(), y)
                self.optimizer.zero_grad(set_to_none=True)
                value.backward()
                self.optimizer.step()
        self._sync()
        return time.perf_counter() - t

    def embed(self, rows: np.ndarray | None = None, prefetch: int | None = None) -> np.ndarray:
        s = self.s
        return embed_images(
            self.model,
            self.cache.images,
            self.cache.pre,
            rows=rows,
            device=self.device,
            batch_size=s.eval_batch_size,
            amp=s.amp,
            cpu_amp=s.cpu_amp,
            channels_last=s.channels_last,
            prefetch=prefetch,
        )

    def weights(self) -> list[torch.Tensor]:
        return [p.detach().clone() for p in [*self.model.parameters(), *self.loss.parameters()]]

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def check_data_path(s: TrainSettings, cache: Cache, device: torch.device) -> dict[str, bool]:
    """3 steps from one initial state with batches made in the step (twice: the control, which
    fails if an op is nondeterministic) and made ahead: the same weights, bit for bit; the
    same embeddings."""
    weights, embeddings = [], []
    rows = cache.rows[: 3 * s.eval_batch_size // 2]
    for prefetch in (0, 0, 2):
        arm = Arm(s, cache, device)
        arm.study(3, prefetch=prefetch)
        weights.append(arm.weights())
        embeddings.append(arm.embed(rows, prefetch=prefetch))
        del arm

    def same(i: int, j: int) -> bool:
        w = all(torch.equal(a, b) for a, b in zip(weights[i], weights[j], strict=True))
        return w and bool(np.array_equal(embeddings[i], embeddings[j]))

    return {"inline_repeatable": same(0, 1), "ahead_equals_inline": same(0, 2)}


def count_syncs(arm: Arm, steps: int) -> dict[str, float]:
    """Host syncs per study step (torch.cuda sync debug mode), by thread: the main thread's
    stall the GPU's queue; the producer's wait only for its side stream."""
    if arm.device.type != "cuda":
        return {}
    seen: dict[str, int] = {}

    def record(message: Any, *args: Any, **kwargs: Any) -> None:
        if "synchroniz" in str(message):
            main = threading.current_thread() is threading.main_thread()
            seen["main" if main else "producer"] = seen.get("main" if main else "producer", 0) + 1

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = record
        torch.cuda.set_sync_debug_mode("warn")
        try:
            arm.study(steps)
        finally:
            torch.cuda.set_sync_debug_mode(0)
    return {k: v / steps for k, v in seen.items()}


def train_rates(arm: Arm, size: dict[str, Any]) -> dict[str, float]:
    """Images/s of the study and the bare loop, timed in alternating blocks after a warm-up."""
    arm.study(max(size["steps"] // 5, 2))
    arm.bare(max(size["steps"] // 5, 2))
    spent = {"study": 0.0, "bare": 0.0}
    for block in range(size["blocks"]):
        for name in ("study", "bare") if block % 2 == 0 else ("bare", "study"):
            spent[name] += getattr(arm, name)(size["steps"])
    images = size["blocks"] * size["steps"] * arm.s.batch_size
    rate = {f"{name}_img_s": images / t for name, t in spent.items()}
    return {**rate, "study_over_bare": rate["study_img_s"] / rate["bare_img_s"]}


def embed_rate(arm: Arm) -> dict[str, float]:
    arm.embed(arm.cache.rows[: 2 * arm.s.eval_batch_size])  # warm-up
    t = time.perf_counter()
    arm.embed()
    n = len(arm.cache.images)
    return {"embed_img_s": n / (time.perf_counter() - t), "embed_images": n}


def knn_time(shape: tuple[int, int]) -> dict[str, float]:
    emb = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    t = time.perf_counter()
    knn(emb, KNN_K, metric="cosine")
    return {"knn_seconds": time.perf_counter() - t, "knn_rows": shape[0], "knn_dim": shape[1]}


def compiled_rate(arm: Arm, size: dict[str, Any]) -> dict[str, float]:
    arm.model.backbone.compile()  # as TrainSettings.torch_compile
    t = time.perf_counter()
    arm.study(2)
    first = time.perf_counter() - t
    seconds = sum(arm.study(size["steps"]) for _ in range(size["blocks"]))
    images = size["blocks"] * size["steps"] * arm.s.batch_size
    return {"compile_first_steps_s": first, "compiled_study_img_s": images / seconds}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--tiny", action="store_true", help="tiny sizes on the CPU (CI smoke run)")
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    ap.add_argument("--dataset", default="sop")
    ap.add_argument("--loss", default="proxy_anchor")
    ap.add_argument("--batch-size", type=int, default=None, help="default: the dataset's")
    ap.add_argument("--device", default=None, help="default: cuda (cpu with --tiny)")
    ap.add_argument("--compile", action="store_true", help="also the torch.compile'd step")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    a = ap.parse_args(argv)
    if a.device is None and not a.tiny and not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device here; --tiny runs every part on the CPU")
    a.device = a.device or ("cpu" if a.tiny else "cuda")
    device = resolve_device(a.device)
    s = settings(a)
    size = SIZES["tiny" if a.tiny else "full"]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    print(
        f"gpu_check on {name or 'cpu'}: torch {torch.__version__}, {s.backbone}@{s.image_size} "
        f"from {size['cache']} px uint8, batch {s.batch_size}, loss {s.loss} ({s.sampler}), "
        f"amp={s.amp and device.type == 'cuda'} channels_last={s.channels_last} "
        f"deterministic={s.deterministic} load={os.getloadavg()[0]:.1f}",
        flush=True,
    )
    report: dict[str, Any] = {"device": name, "settings": s.model_dump(mode="json")}
    with deterministic(s.deterministic):
        cache = Cache(s, size)
        report.update(check_data_path(s, cache, device))
        print(
            f"data path  batches made ahead == made in the step (weights after 3 steps, "
            f"embeddings): {report['ahead_equals_inline']} (control, in the step twice: "
            f"{report['inline_repeatable']})",
            flush=True,
        )
        arm = Arm(s, cache, device)
        report.update(train_rates(arm, size))
        met = report["study_img_s"] >= 4250 and report["study_over_bare"] >= 0.9
        print(
            f"train      study {report['study_img_s']:,.0f} img/s | bare "
            f"{report['bare_img_s']:,.0f} img/s | study/bare {report['study_over_bare']:.3f} "
            f"(goals >= 0.9 and >= 4,250 img/s: {'met' if met else 'NOT met'})",
            flush=True,
        )
        report["syncs_per_step"] = count_syncs(arm, size["steps"])
        if device.type == "cuda":
            print(f"syncs      host syncs per study step: {report['syncs_per_step']}", flush=True)
        report.update(embed_rate(arm))
        print(f"embed      {report['embed_img_s']:,.0f} img/s ({report['embed_images']} images)")
        report.update(knn_time(size["knn"]))
        rows, dim = size["knn"]
        print(f"knn        {rows:,} x {dim}, k={KNN_K}: {report['knn_seconds']:.1f} s", flush=True)
        if a.compile:
            report.update(compiled_rate(arm, size))
            print(
                f"compile    first steps {report['compile_first_steps_s']:.0f} s; study "
                f"{report['compiled_study_img_s']:,.0f} img/s",
                flush=True,
            )
    if a.json is not None:
        a.json.write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
