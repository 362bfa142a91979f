"""Evaluation: exact faiss k-NN, retrieval metrics, NMI, seed confidence intervals.

Definitions follow Musgrave et al. 2020, "A Metric Learning Reality Check" (Recall@K, MAP@R,
R-Precision, NMI); pytorch-metric-learning (PML) 2.x's ``AccuracyCalculator`` is the test oracle.
Where we differ from PML, and why:

* Ties: PML orders tied neighbours as faiss returns them (``IndexFlatIP``: descending index);
  we order by (distance, gallery index), lower index first, even across the k boundary, with
  distances re-scored in float64 the same way on every machine (``retrieval``).
* k-NN depth: PML 1.x capped k at 1023 (faiss-GPU limit) and PML 2.x defaults to the whole
  gallery; we search max(R) (exact MAP@R) with a ``max_k=1023`` cap that warns when it bites.
* Recall@K for K > 1 is not in PML (its precision@K is another metric): naive oracle only.
* NMI: same recipe (faiss k-means, 20 iterations, sklearn NMI) but seeded, without faiss's
  training subsample, and spherical for cosine embeddings (PML: Euclidean k-means, seed 1234).
* Lone queries (R = 0) are skipped as in PML; if every query is lone we raise (PML: nan).
"""

from dmlstudy.evaluation.clustering import kmeans_assign, nmi
from dmlstudy.evaluation.evaluator import evaluate, per_query_metrics
from dmlstudy.evaluation.metrics import count_relevant, map_at_r, r_precision, recall_at_k
from dmlstudy.evaluation.multimodal import fine_structure_metrics
from dmlstudy.evaluation.neighbors import Neighbors, nearest_neighbors
from dmlstudy.evaluation.retrieval import METRICS, knn, prepare_embeddings
from dmlstudy.evaluation.stats import mean_ci

__all__ = [
    "METRICS",
    "Neighbors",
    "count_relevant",
    "evaluate",
    "fine_structure_metrics",
    "kmeans_assign",
    "knn",
    "map_at_r",
    "mean_ci",
    "nearest_neighbors",
    "nmi",
    "per_query_metrics",
    "prepare_embeddings",
    "r_precision",
    "recall_at_k",
]
