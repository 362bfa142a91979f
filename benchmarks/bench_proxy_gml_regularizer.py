"""ProxyGML's proxy regularizer (eq. 8), forward + backward: the one-line autograd form against
the blockwise function of :mod:`dmlstudy.losses.proxy_gml` at several block sizes, interleaved in
one process (machine load affects them alike), with the bfloat16 autocast of the CPU study.

Prints milliseconds (best of ``--repeats``) and the ratio to the one-line form. Defaults: Omniglot's
858 training classes × 12 proxies at 32-d, one thread (the paper study's runs)::

    python benchmarks/bench_proxy_gml_regularizer.py
    python benchmarks/bench_proxy_gml_regularizer.py --classes 100 --dim 512   # CUB, official
"""

from __future__ import annotations

import argparse
import os
import time

import torch
import torch.nn.functional as F

from dmlstudy.losses.proxy_gml import proxy_regularizer


def one_line(p: torch.Tensor, classes: int, per_class: int) -> torch.Tensor:
    """The regularizer as autograd sees it without blocks (the implementation before them)."""
    sums = p.view(classes, per_class, -1).sum(dim=1)
    return F.cross_entropy(p @ sums.T, torch.arange(classes).repeat_interleave(per_class))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--classes", type=int, default=858)
    ap.add_argument("--per-class", type=int, default=12)
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--no-amp", action="store_true", help="float32 instead of bf16 autocast")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    rows = a.classes * a.per_class
    raw = torch.randn(rows, a.dim, generator=torch.Generator().manual_seed(0))
    proxies = F.normalize(raw, dim=1).requires_grad_()
    forms = {"one line": lambda p: one_line(p, a.classes, a.per_class)}
    for block in (128, 512, 1024, rows):
        forms[f"blocks of {block}"] = lambda p, b=block: proxy_regularizer(
            p, a.classes, a.per_class, block_rows=b
        )
    best = dict.fromkeys(forms, float("inf"))
    for _ in range(a.repeats):
        for name, form in forms.items():
            start = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=not a.no_amp):
                value = form(proxies)
            value.backward()
            best[name] = min(best[name], time.perf_counter() - start)
            proxies.grad = None
    print(
        f"C={a.classes} N={a.per_class} d={a.dim} rows={rows} threads={a.threads} "
        f"bf16={not a.no_amp}; load average {os.getloadavg()[0]:.1f}"
    )
    print("| form | ms (best) | ÷ one line |\n|---|---|---|")
    for name, t in best.items():
        print(f"| {name} | {t * 1e3:.1f} | {t / best['one line']:.2f} |")


if __name__ == "__main__":
    main()
