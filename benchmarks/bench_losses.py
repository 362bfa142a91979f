"""Forward+backward time of every loss next to its pytorch-metric-learning equivalent.

Prints a markdown table: best-of-N milliseconds of ``loss(x, y).backward()`` per loss, batch size B
and number of classes C (embedding size d), PML's time for the identically configured loss where one
exists, and the ratio ours/PML (< 1: ours is faster).  Both run in the same process, interleaved, so
machine load affects them alike; the load average is printed with the table.  Timings use one
intra-op thread by default (``--threads``).

Usage::

    python benchmarks/bench_losses.py                       # every loss, B∈{128,512}, C∈{100,11318}
    python benchmarks/bench_losses.py --losses triplet triplet:miner=hard --batch 512 --classes 100
    python benchmarks/bench_losses.py --list

A loss spec is ``name`` or ``name:key=value,key=value`` (values parsed as Python literals).
Labels follow an m-per-class sampler: ``min(C, B/4)`` classes with B/k samples each.
"""

from __future__ import annotations

import argparse
import ast
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from dmlstudy.losses import build_loss, list_losses

DEFAULT_SPECS = [
    "contrastive",
    "triplet",
    "triplet:miner=semihard",
    "triplet:miner=hard",
    "npair",
    "multi_similarity",
    "direction",
    "direction:base=multi_similarity",
    "direction:base=proxy_nca",
    "proxy_nca",
    "proxy_nca_pp",
    "proxy_anchor",
    "proxy_gml",
    "soft_triple",
    "arcface",
    "cosface",
    "language",
    "daal",
    "rsw",
]
Fn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"triplet:miner=hard"`` → ``("triplet", {"miner": "hard"})``."""
    name, _, rest = spec.partition(":")
    params: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        try:
            params[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            params[key] = {"true": True, "false": False}.get(value.lower(), value)
    return name, params


def _fake_encoder(texts: list[str]) -> np.ndarray:
    return np.array(
        [[t.count(ch) + 0.1 for ch in "abcdefghijklmnopqrstuvwxyz0123456789 "] for t in texts]
    )


def ours(name: str, params: dict[str, Any], num_classes: int, dim: int) -> Fn:
    extra = {"encoder": _fake_encoder} if name == "language" else {}
    names = [f"class {c}" for c in range(num_classes)]
    return build_loss(
        name, num_classes=num_classes, embedding_dim=dim, class_names=names, **extra, **params
    )


def pml_equivalent(name: str, params: dict[str, Any], num_classes: int, dim: int) -> Fn | None:
    """The identically configured PML loss (benchmark/test oracle only), or None."""
    try:
        from pytorch_metric_learning import distances, losses, miners, regularizers
    except ImportError:
        return None
    if name == "contrastive":
        return losses.ContrastiveLoss(
            pos_margin=params.get("pos_margin", 0.0), neg_margin=params.get("neg_margin", 0.5)
        )
    if name == "triplet":
        margin, miner = params.get("margin", 0.1), params.get("miner", "all")
        loss = losses.TripletMarginLoss(margin=margin)
        if miner == "all":
            return loss
        mine = (
            miners.BatchHardMiner()
            if miner == "hard"
            else miners.TripletMarginMiner(margin=margin, type_of_triplets="semihard")
        )
        return lambda x, y: loss(x, y, mine(x, y))
    if name == "npair":  # PML pairs only the first two samples of a class: at 4 per class its
        # cross-entropy covers half the batch (N anchors, N−1 negatives) where ours covers all
        return losses.NPairsLoss(
            distance=distances.DotProductSimilarity(normalize_embeddings=False),
            embedding_regularizer=regularizers.LpRegularizer(power=2),
            embedding_reg_weight=params.get("l2_reg_weight", 0.001),
        )
    if name == "multi_similarity":
        loss = losses.MultiSimilarityLoss(
            alpha=params.get("alpha", 2.0),
            beta=params.get("beta", 50.0),
            base=params.get("threshold", 0.5),
        )
        if not params.get("mining", True):
            return loss
        mine = miners.MultiSimilarityMiner(epsilon=params.get("epsilon", 0.1))
        return lambda x, y: loss(x, y, mine(x, y))
    if name == "proxy_nca":
        return losses.ProxyNCALoss(num_classes, dim, softmax_scale=params.get("softmax_scale", 1.0))
    if name == "proxy_anchor":
        return losses.ProxyAnchorLoss(
            num_classes, dim, margin=params.get("margin", 0.1), alpha=params.get("alpha", 32.0)
        )
    if name == "soft_triple":
        return losses.SoftTripleLoss(num_classes, dim)
    if name == "arcface":
        return losses.ArcFaceLoss(num_classes, dim)
    if name == "cosface":
        return losses.CosFaceLoss(num_classes, dim)
    return None


def batch(
    batch_size: int, num_classes: int, dim: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    k = max(1, min(num_classes, batch_size // 4))
    classes = torch.randperm(num_classes, generator=gen)[:k]
    labels = classes[torch.arange(batch_size) % k]
    return torch.randn(batch_size, dim, generator=gen), labels[
        torch.randperm(batch_size, generator=gen)
    ]


def time_fns(fns: list[Fn | None], x: torch.Tensor, y: torch.Tensor, repeats: int) -> list[float]:
    """Best-of-``repeats`` milliseconds of forward+backward for each fn, calls interleaved (one
    warm-up each) so that load changes hit all alike; the minimum is the least load-disturbed
    run."""
    times: list[list[float]] = [[] for _ in fns]
    for i in range(repeats + 1):
        for k, fn in enumerate(fns):
            if fn is None:
                continue
            xg = x.clone().requires_grad_(True)
            start = time.perf_counter()
            fn(xg, y).backward()
            if i >= 1:
                times[k].append(1e3 * (time.perf_counter() - start))
    return [min(t) if t else float("nan") for t in times]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--losses", nargs="+", default=DEFAULT_SPECS, help="loss specs (name[:k=v,...])"
    )
    parser.add_argument("--batch", nargs="+", type=int, default=[128, 512])
    parser.add_argument("--classes", nargs="+", type=int, default=[100, 11318])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="intra-op threads (default 1: on a shared, loaded machine spinning OpenMP threads "
        "make multi-threaded timings meaningless; 0 keeps torch's default)",
    )
    parser.add_argument("--list", action="store_true", help="print the registered losses and exit")
    args = parser.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.list:
        print("\n".join(list_losses()))
        return
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average before: "
        f"{os.getloadavg()}"
    )
    print("\n| loss | B | C | ours ms | PML ms | ours/PML |\n|---|---|---|---|---|---|")
    for spec in args.losses:
        name, params = parse_spec(spec)
        for num_classes in args.classes:
            for batch_size in args.batch:
                x, y = batch(batch_size, num_classes, args.dim)
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(0)
                    mine, theirs = (
                        ours(name, params, num_classes, args.dim),
                        pml_equivalent(name, params, num_classes, args.dim),
                    )
                t_ours, t_pml = time_fns([mine, theirs], x, y, args.repeats)
                ratio = f"{t_ours / t_pml:.2f}" if theirs is not None else "–"
                pml = f"{t_pml:.1f}" if theirs is not None else "–"
                print(
                    f"| {spec} | {batch_size} | {num_classes} | {t_ours:.1f} | {pml} | {ratio} |",
                    flush=True,
                )
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
