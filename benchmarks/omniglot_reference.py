"""A bare-PyTorch Omniglot reference, independent of the dmlstudy training code (quality floor).

64-channel 4-block ConvNet, 128-d, random batches of 128 over all 964 background characters (no
validation split), ±2 px shifts, normalized softmax with an additive cosine margin (scale 16,
margin 0.1), proxies at 100× the lr, Adam 1e-3, 15 epochs; test Recall@1 over the 659 evaluation
characters (leave-one-out, cosine). Reads only a prepared cache (images.npy + index.csv)::

    python benchmarks/omniglot_reference.py work/prepared/omniglot --epochs 15
"""

import argparse
import time

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

ap = argparse.ArgumentParser()
ap.add_argument("prepared_dir")
ap.add_argument("--epochs", type=int, default=15)
ap.add_argument("--dim", type=int, default=128)
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--cosine-lr", action="store_true", help="cosine-anneal the lr (default constant)")
ap.add_argument(
    "--without-val-classes",
    action="store_true",
    help="train on the study's train split only (its validation characters left out)",
)
ap.add_argument("--threads", type=int, default=None)
a = ap.parse_args()
torch.manual_seed(a.seed)
index = pd.read_csv(f"{a.prepared_dir}/index.csv")
images = np.load(f"{a.prepared_dir}/images.npy")[..., 0]
x_all = torch.from_numpy(1.0 - images.astype(np.float32) / 255.0)[:, None]  # ink = 1
if a.threads:
    torch.set_num_threads(a.threads)
splits = ["train"] if a.without_val_classes else ["train", "val"]
train = np.flatnonzero(index["split"].isin(splits).to_numpy())
test = np.flatnonzero((index["split"] == "test").to_numpy())
y_train = torch.from_numpy(np.unique(index["label"].to_numpy()[train], return_inverse=True)[1])


def block(i: int, o: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2)
    )


net = nn.Sequential(
    block(1, 64), block(64, 64), block(64, 64), block(64, 64), nn.Flatten(), nn.Linear(64, a.dim)
)
proxies = nn.Parameter(torch.randn(int(y_train.max()) + 1, a.dim) * 0.01)
opt = torch.optim.Adam([{"params": net.parameters()}, {"params": [proxies], "lr": 0.1}], lr=1e-3)
steps = len(train) // 128
sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, a.epochs * steps) if a.cosine_lr else None
g = torch.Generator().manual_seed(a.seed)
t0 = time.perf_counter()
for epoch in range(a.epochs):
    net.train()
    perm = torch.randperm(len(train), generator=g)
    for s in range(steps):
        b = perm[s * 128 : (s + 1) * 128]
        x = F.pad(x_all[train[b.numpy()]], (2, 2, 2, 2))
        dx, dy = torch.randint(0, 5, (2,), generator=g).tolist()  # one ±2 px shift per batch
        x = x[:, :, dy : dy + 28, dx : dx + 28]
        cos = F.normalize(net(x)) @ F.normalize(proxies).T
        cos = cos - 0.1 * F.one_hot(y_train[b], cos.shape[1])
        loss = F.cross_entropy(16.0 * cos, y_train[b])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if sched:
            sched.step()
    net.eval()
    with torch.no_grad():
        z = F.normalize(
            torch.cat([net(x_all[test[i : i + 1024]]) for i in range(0, len(test), 1024)])
        )
    sim = z @ z.T
    sim.fill_diagonal_(-2)
    labels = torch.from_numpy(index["label"].to_numpy()[test])
    r1 = (labels[sim.argmax(1)] == labels).float().mean().item()
    seconds = time.perf_counter() - t0
    print(
        f"epoch {epoch + 1}: loss {loss.item():.3f}  test R@1 {r1:.3f}  {seconds:.0f} s", flush=True
    )
