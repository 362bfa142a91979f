"""Fine-structure metrics for the multi-modal experiment (train on coarse, probe fine labels).

An embedding trained with coarse labels only (e.g. Omniglot alphabets) is probed for the fine
structure (characters) it kept inside each coarse class — the question asked by Roth et al.
2020 (DiVA) / Milbich et al. 2020 about over-compressing intra-class variation:

* ``fine_recall@1``, ``fine_map@r``, ``fine_r_precision``: query-is-gallery retrieval over the
  whole set scored against the FINE labels (same definitions as :func:`evaluate`);
* ``within_coarse_nmi``: unweighted mean over coarse classes of the NMI between k-means
  clusters of that coarse class's embeddings (k = its number of fine classes) and its fine
  labels. Coarse classes with a single fine class have nothing to separate and are skipped;
  ``within_coarse_nmi_classes`` says how many classes were averaged.
"""

from __future__ import annotations

import numpy as np

from dmlstudy.evaluation.clustering import DEFAULT_NITER, nmi_prepared
from dmlstudy.evaluation.evaluator import evaluate
from dmlstudy.evaluation.retrieval import prepare_embeddings


def fine_structure_metrics(
    embeddings: np.ndarray,
    coarse_labels: np.ndarray,
    fine_labels: np.ndarray,
    metric: str = "cosine",
    *,
    seed: int = 0,
    niter: int = DEFAULT_NITER,
) -> dict[str, float]:
    """Fine-label retrieval and within-coarse-class NMI of coarse-trained embeddings.

    >>> x = np.array([[1, 0, 0], [1, 0, .1], [1, .3, 0], [1, .3, .1],
    ...               [0, 1, 0], [0, 1, .1], [.3, 1, 0], [.3, 1, .1]])
    >>> m = fine_structure_metrics(x, np.repeat([0, 1], 4), np.repeat([0, 1, 2, 3], 2))
    >>> m["fine_recall@1"], m["within_coarse_nmi"], m["within_coarse_nmi_classes"]
    (1.0, 1.0, 2.0)
    """
    x = prepare_embeddings(embeddings, metric)
    coarse = np.asarray(coarse_labels)
    fine = np.asarray(fine_labels)
    if coarse.shape != (len(x),) or fine.shape != (len(x),):
        raise ValueError(
            f"coarse_labels {coarse.shape} and fine_labels {fine.shape} must both be ({len(x)},)"
        )
    pairs = np.unique(np.stack([fine, coarse], axis=1), axis=0)
    if len(np.unique(pairs[:, 0])) != len(pairs):
        raise ValueError("each fine label must belong to exactly one coarse label (nested labels)")
    retrieval = evaluate(x, fine, metric=metric, recall_at=(1,), with_nmi=False)
    scores = []
    for c in np.unique(coarse):
        rows = np.flatnonzero(coarse == c)
        if len(np.unique(fine[rows])) < 2:
            continue
        scores.append(nmi_prepared(x[rows], fine[rows], metric, seed, niter))
    if not scores:
        raise ValueError(
            "no coarse class contains two or more fine classes; within-class NMI is undefined"
        )
    return {
        "fine_recall@1": retrieval["recall@1"],
        "fine_map@r": retrieval["map@r"],
        "fine_r_precision": retrieval["r_precision"],
        "within_coarse_nmi": float(np.mean(scores)),
        "within_coarse_nmi_classes": float(len(scores)),
    }
