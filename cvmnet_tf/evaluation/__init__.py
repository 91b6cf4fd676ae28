"""Evaluation of cross-view retrieval (NumPy only; matplotlib only for plots).

- :mod:`.metrics`: ranks (strictly-closer rule of the released code), recall@K,
  recall@top-1% (K = int(0.01 N) + 1), top-K curves; blocked, bounded memory
  (:func:`similarity_blocks` is the one blocked matrix product of the package).
- :mod:`.multi_match`: several true matches per query (class labels, distractors
  labelled -1): recall@K and University-1652's average precision (AP).
- :mod:`.geo`: CVACT_test geo-recall (OriCNN RecallGeo.m, 5 m), localization error and
  :func:`localization_summary` (recall versus distance, mean / median error).
- :mod:`.geomap` and :mod:`.localization`: a geo-referenced map, its tiles, and the
  localization experiment of paper section 5.5 (``cvmnet-localize``).
- :mod:`.vigor_metrics`: VIGOR's metrics (positive-only recall, hit rate with
  semi-positives, metre-level error, chance levels) in one blocked pass of bounded memory.
- :mod:`.published`: published numbers (CVM-Net, SAFA, Sample4Geo, University-1652, VIGOR)
  and Markdown comparison tables (standard, VIGOR, limited field of view).
- :mod:`.report`: :func:`retrieval_report` / :func:`write_report`, what ``cvmnet-evaluate`` runs.
- :mod:`.plots`: PNG figures (imported lazily: ``from cvmnet_tf.evaluation import plots``).
"""
from cvmnet_tf.evaluation.geo import (
    DEFAULT_GEO_THRESHOLD_M,
    DEFAULT_LOCALIZATION_THRESHOLDS_M,
    geo_ranks,
    geo_recall,
    localization_errors,
    localization_summary,
    near_sets,
    recall_at_distance,
)
from cvmnet_tf.evaluation.metrics import (
    RankResult,
    check_descriptors,
    compute_ranks,
    evaluate_retrieval,
    recall_at_k,
    recall_at_top_percent,
    retrieval_ranks,
    summarize_ranks,
    top_k_curve,
    top_k_indices,
    top_percent_k,
)
from cvmnet_tf.evaluation.multi_match import (
    average_precision,
    average_precisions,
    first_match_ranks,
    labelled_retrieval,
    match_positions,
)
from cvmnet_tf.evaluation.published import PUBLISHED, comparison_table, find_published
from cvmnet_tf.evaluation.report import RetrievalReport, retrieval_report, write_report

__all__ = [
    "DEFAULT_GEO_THRESHOLD_M", "DEFAULT_LOCALIZATION_THRESHOLDS_M", "PUBLISHED", "RankResult", "RetrievalReport",
    "average_precision", "average_precisions", "check_descriptors", "comparison_table", "first_match_ranks",
    "labelled_retrieval", "match_positions", "compute_ranks", "evaluate_retrieval", "find_published", "geo_ranks",
    "geo_recall", "localization_errors", "localization_summary", "near_sets", "recall_at_distance", "recall_at_k",
    "recall_at_top_percent", "retrieval_ranks", "retrieval_report", "summarize_ranks", "top_k_curve",
    "top_k_indices", "top_percent_k", "write_report",
]
