"""A short Omniglot run on CPU: prepare the 28 px cache, train the preset ConvNet with one loss for
a few epochs (the params.yaml Omniglot preset), print wall time, images/s and test Recall@1 / MAP@R.

Reference (architecture.md, a 60-line script outside the project: 4-block ConvNet, 28 px,
batch 128, normalized softmax with margin, Adam): test R@1 0.754 after 3 epochs on the 659
evaluation classes, ≈15 s per epoch.  Prints figures; asserts nothing::

    python benchmarks/omniglot_cpu_run.py --loss cosface --epochs 3
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from dmlstudy.data import DATA_DIR_ENV, prepare_dataset
from dmlstudy.training import TrainSettings, train


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--data-dir",
        default=os.environ.get(DATA_DIR_ENV, "data"),
        help=f"archives under <dir>/omniglot/ (default ${DATA_DIR_ENV}, else ./data)",
    )
    ap.add_argument(
        "--work-dir",
        default=str(Path(tempfile.gettempdir()) / "dmlstudy_bench" / "omniglot"),
    )
    ap.add_argument("--loss", default="cosface")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument(
        "--backbone",
        default="convnet4_050",
        help="timm name: convnet4_050 (the preset) or convnet4",
    )
    ap.add_argument(
        "--loss-param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="loss hyper-parameter override (float), repeatable, e.g. --loss-param scale=16",
    )
    ap.add_argument("--crop-scale", type=float, nargs=2, default=(0.7, 1.0))
    ap.add_argument(
        "--fresh", action="store_true", help="delete an earlier run of the same loss first"
    )
    a = ap.parse_args()
    work = Path(a.work_dir)
    t0 = time.perf_counter()
    prepared = prepare_dataset(
        "omniglot",
        a.data_dir,
        work / "prepared",
        image_size=28,
        val_fraction=0.15,
        seed=0,
        workers=2,
    )
    t_prep = time.perf_counter() - t0
    loss_params = {k: float(v) for k, v in (kv.split("=", 1) for kv in a.loss_param)}
    tag = "".join(f"_{k}{v:g}" for k, v in loss_params.items()) + f"_crop{a.crop_scale[0]:g}"
    out = work / f"run_{a.loss}{tag}_e{a.epochs}_s{a.seed}"
    if a.fresh and out.exists():
        import shutil

        shutil.rmtree(out)
    s = TrainSettings(
        prepared_dir=prepared,
        out_dir=out,
        loss=a.loss,
        loss_params=loss_params,
        seed=a.seed,
        device="cpu",
        backbone=a.backbone,
        embedding_dim=64,
        image_size=28,
        crop_scale=tuple(a.crop_scale),
        hflip=False,
        cpu_threads=a.threads,
        epochs=a.epochs,
        batch_size=128,
        m_per_class=4,
        lr=1e-3,
        optimizer="adam",
        weight_decay=0.0,
        schedule="cosine",
        eval_every=1,
        progress=False,
    )
    t1 = time.perf_counter()
    m = train(s)
    wall = time.perf_counter() - t1
    print(
        f"prepare (or reuse) cache: {t_prep:.1f} s; "
        f"threads={a.threads or torch.get_num_threads()}; load average now {os.getloadavg()[0]:.1f}"
    )
    for h in m["history"]:
        print(
            f"  epoch {h['epoch']}: loss {h['loss']:.4f}  {h['images_per_s']:.0f} img/s  "
            f"{h['seconds']:.1f} s  val R@1 {h['val']['recall@1']:.3f} MAP@R "
            f"{h['val']['map@r']:.3f}"
        )
    t = m["test"]
    print(
        f"loss={a.loss} {loss_params} crop_scale={a.crop_scale} epochs={a.epochs}: train+eval wall "
        f"{wall:.1f} s, train {m['train_seconds']:.1f} s, {m['train_images_per_s']:.0f} train "
        f"img/s; best epoch {m['best_epoch']} (val MAP@R)"
    )
    print(
        f"test (659 classes): R@1 {t['recall@1']:.3f}  R@8 {t['recall@8']:.3f}  MAP@R "
        f"{t['map@r']:.3f}  NMI {t['nmi']:.3f}   (reference: R@1 0.754 after 3 epochs)"
    )


if __name__ == "__main__":
    main()
