"""Benchmark dmlstudy.evaluation at Stanford Online Products scale (prints seconds).

SOP test split: 60,502 images of 11,316 classes (2-12 images each), 512-d embeddings.
Random clustered embeddings stand in for a model (class centre + isotropic noise, 2-12 items
per class), so the metrics are mid-range (R@1 ~0.76) rather than trivial. Targets on 2 CPU
cores: Recall@K + MAP@R <= 35 s, NMI (faiss k-means, 11,316 clusters, 20 iterations) <= 3 min.
Both are GEMM-bound (60,502 x 60,502 x 512 for k-NN; 60,502 x 11,316 x 512 per k-means
iteration), so the figures scale with the CPU share the process actually gets.

    .venv/bin/python benchmarks/bench_evaluation.py            # full SOP scale
    .venv/bin/python benchmarks/bench_evaluation.py --n 5000 --classes 900   # quick smoke run
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import faiss
import numpy as np

from dmlstudy.evaluation import evaluate, nmi


def sop_like(
    n: int, n_classes: int, dim: int, seed: int, noise: float
) -> tuple[np.ndarray, np.ndarray]:
    """Labels with 2..12 items per class (skewed to small classes, sizes summing to n) and
    clustered float32 embeddings (class centre + ``noise`` * isotropic Gaussian)."""
    rng = np.random.default_rng(seed)
    if not 2 * n_classes <= n <= 12 * n_classes:
        raise ValueError(f"n={n} must lie between 2 and 12 times classes={n_classes}")
    sizes = np.clip(1 + rng.geometric(0.25, size=n_classes), 2, 12)
    while (diff := n - int(sizes.sum())) != 0:  # nudge random classes until the sizes sum to n
        room = np.flatnonzero(sizes < 12) if diff > 0 else np.flatnonzero(sizes > 2)
        pick = rng.choice(room, size=min(len(room), abs(diff)), replace=False)
        sizes[pick] += np.sign(diff)
    labels = rng.permutation(np.repeat(np.arange(n_classes), sizes))
    centers = rng.standard_normal((n_classes, dim), dtype=np.float32)
    x = centers[labels] + noise * rng.standard_normal((n, dim), dtype=np.float32)
    return x, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=60_502)
    parser.add_argument("--classes", type=int, default=11_316)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--niter", type=int, default=20, help="k-means iterations for NMI")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--noise",
        type=float,
        default=2.2,
        help="within-class noise std (centres: 1); 2.2 gives R@1 ~0.76 at full scale, like SOP",
    )
    args = parser.parse_args()

    print(
        f"faiss {faiss.__version__}, OpenMP threads {faiss.omp_get_max_threads()}, "
        f"cpus {os.cpu_count()}, load average {os.getloadavg()}"
    )
    x, labels = sop_like(args.n, args.classes, args.dim, args.seed, args.noise)
    print(
        f"data: {x.shape[0]} x {x.shape[1]} float32, {len(np.unique(labels))} classes, "
        f"class sizes {np.bincount(labels).min()}..{np.bincount(labels).max()}, noise {args.noise}"
    )

    t0 = time.perf_counter()
    retrieval = evaluate(x, labels, metric="cosine", with_nmi=False)
    t_retrieval = time.perf_counter() - t0
    print(
        f"Recall@1/2/4/8 + MAP@R + R-Precision (cosine): {t_retrieval:.1f} s  "
        + "  ".join(f"{k}={v:.4f}" for k, v in retrieval.items())
    )

    t0 = time.perf_counter()
    value = nmi(x, labels, metric="cosine", seed=args.seed, niter=args.niter)
    t_nmi = time.perf_counter() - t0
    print(
        f"NMI (faiss k-means, {args.classes} clusters, {args.niter} iterations): {t_nmi:.1f} s  "
        f"nmi={value:.4f}"
    )
    print(
        f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB, "
        f"load average after {os.getloadavg()}"
    )


if __name__ == "__main__":
    main()
