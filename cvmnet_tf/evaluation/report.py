"""The retrieval report: every metric of a set of descriptors in one blocked pass, the
comparison with the published numbers, and the figures, written all-or-nothing.

``cvmnet-evaluate`` loads its files, calls :func:`retrieval_report` and
:func:`write_report`; a library user does the same with arrays:

    report = retrieval_report(ground, satellite, query_utm=q_utm, database_utm=d_utm,
                              compare={"model": "cvm_net_i", "dataset": "cvusa"})
    write_report(report, json_path="metrics.json", top_k_plot="topk.png")

Modes: pair retrieval (query i matches database row i; database rows after the first Nq
are distractors; optional satellite -> ground from the same blocks; optional CVACT
geo-recall and localization error with UTM positions) or, with class labels, several
true matches per query (University-1652: recall@K and AP, :mod:`.multi_match`).
Metrics are fractions (0..1).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Mapping, Optional, Sequence


from cvmnet_tf.evaluation import geo, metrics, multi_match, published
from cvmnet_tf.utils import atomic_io

__all__ = ["RetrievalReport", "retrieval_report", "write_report"]


@dataclasses.dataclass
class RetrievalReport:
    """What :func:`retrieval_report` computed.

    metrics: the metrics dict (fractions, counts, the cut-off rule);
    table: the Markdown comparison with the published numbers (or None);
    curves: label -> recall fractions at K = 1..top_k_max, for the top-K figure;
    top_percent_k: the K of recall@1% to mark on that figure (None: beyond its range);
    distance: (thresholds in metres, recall fractions, random-tile recall fractions) of the
    localization figure, or None;
    warnings: what could make a figure mislead (ties deciding the ranking), one line each;
    also in ``metrics["warnings"]``.
    """

    metrics: dict
    table: Optional[str] = None
    curves: dict = dataclasses.field(default_factory=dict)
    top_percent_k: Optional[int] = None
    distance: Optional[tuple] = None
    warnings: list = dataclasses.field(default_factory=list)


def _pair_report(query, database, ks, percent, both_directions, block_size, near, q_utm, d_utm,
                 geo_threshold_m, localization_thresholds_m, top_k_max, query_name, database_name):
    directions = ((metrics.GROUND_TO_SATELLITE, metrics.SATELLITE_TO_GROUND) if both_directions
                  else (metrics.GROUND_TO_SATELLITE,))
    result = metrics.compute_ranks(query, database, directions=directions, near=near, want_best=near is not None,
                                   block_size=block_size, query_name=query_name, database_name=database_name)
    out = metrics.summarize_ranks(result, ks=ks, percent=percent)
    out["top_percent_rule"] = "rank < int(0.01 * percent * N) + 1 (CVM-Net/OriCNN); N = database size"
    distance = None
    if near is not None:
        out["geo/threshold_m"] = float(geo_threshold_m)
        errors = geo.errors_from_best(result.best_index, q_utm, d_utm)
        out.update(geo.localization_summary(errors, localization_thresholds_m))
        chance = geo.random_tile_baseline(q_utm, d_utm, localization_thresholds_m)  # a random database row
        out.update(chance)
        distance = (list(localization_thresholds_m), geo.recall_at_distance(errors, localization_thresholds_m),
                    [chance[f"localization/random_tile/recall@{float(d):g}m"] for d in localization_thresholds_m])
    max_k = min(top_k_max, result.num_database)
    curves = {}
    if result.num_distractors > 0:
        curves["without distractors"] = metrics.top_k_curve(result.ground_to_satellite_no_distractors, max_k)
        curves[f"with {result.num_distractors} distractors"] = metrics.top_k_curve(result.ground_to_satellite, max_k)
    else:
        curves["ground -> satellite"] = metrics.top_k_curve(result.ground_to_satellite, max_k)
    if result.satellite_to_ground is not None:
        curves["satellite -> ground"] = metrics.top_k_curve(result.satellite_to_ground, max_k)
    if result.geo is not None:
        curves[f"geo ({geo_threshold_m:g} m)"] = metrics.top_k_curve(result.geo, max_k)
    k1 = out["top_percent_k"]
    return RetrievalReport(out, curves=curves, top_percent_k=k1 if k1 <= max_k else None, distance=distance)


def _labelled_report(query, database, query_labels, database_labels, ks, block_size, top_k_max, query_name,
                     database_name):
    indptr, positions, first_pessimistic = multi_match.labelled_ranks(
        query, database, query_labels, database_labels, block_size, query_name=query_name, gallery_name=database_name)
    out = multi_match.summarize_positions(indptr, positions, ks, database_labels, first_pessimistic)
    max_k = min(top_k_max, database.shape[0])
    return RetrievalReport(out, curves={"first true match": metrics.top_k_curve(positions[indptr[:-1]], max_k)})


def retrieval_report(query, database, *, query_labels=None, database_labels=None, query_utm=None, database_utm=None,
                     geo_threshold_m: float = geo.DEFAULT_GEO_THRESHOLD_M,
                     localization_thresholds_m: Sequence[float] = geo.DEFAULT_LOCALIZATION_THRESHOLDS_M,
                     ks: Sequence[int] = (1, 5, 10), percent: float = 1.0, both_directions: bool = False,
                     block_size: Optional[int] = None, top_k_max: int = 100, compare: Optional[Mapping] = None,
                     query_name: str = "query", database_name: str = "database") -> RetrievalReport:
    """Every metric of ``query`` (Nq, dim) against ``database`` (Ndb, dim) (module docstring).

    Args:
      query_labels, database_labels: int (Nq,), (Ndb,) class labels (-1: distractor):
        labelled mode (recall@K, AP); otherwise query i matches database row i.
      query_utm, database_utm: (Nq, 2), (Ndb, 2) metres: CVACT geo-recall within
        ``geo_threshold_m`` and the localization error of the best match.
      ks, percent: recall@K and the top-percent cut-off (K = int(0.01 percent N) + 1).
      both_directions: also satellite -> ground (pair mode).
      block_size: query rows per block (default: about 128 MiB of similarities).
      top_k_max: largest K of the top-K curves.
      compare: keyword arguments of :func:`cvmnet_tf.evaluation.published.comparison_table`
        (model, dataset, backbone, loss, task); a table is made when it names a dataset,
        and its task (labelled mode) is recorded in the metrics.
      query_name, database_name: how the inputs are called in error messages.
    """
    if (query_labels is None) != (database_labels is None):
        raise ValueError("query_labels and database_labels must be given together")
    if (query_utm is None) != (database_utm is None):
        raise ValueError("query_utm and database_utm must be given together")
    query, database = metrics.check_descriptor_pair(query, database, query_name, database_name)
    if query_labels is not None:
        report = _labelled_report(query, database, query_labels, database_labels, ks, block_size, top_k_max,
                                  query_name, database_name)
    else:
        near = q_utm = d_utm = None
        if query_utm is not None:
            q_utm = geo.check_utm(query_utm, query.shape[0], f"{query_name} UTM")
            d_utm = geo.check_utm(database_utm, database.shape[0], f"{database_name} UTM")
            near = geo.near_sets(q_utm, d_utm, geo_threshold_m)
        report = _pair_report(query, database, ks, percent, both_directions, block_size, near, q_utm, d_utm,
                              geo_threshold_m, localization_thresholds_m, top_k_max, query_name, database_name)
    warning = metrics.tie_warning(report.metrics)
    if warning:
        report.warnings.append(warning)
        report.metrics["warnings"] = list(report.warnings)
    compare = dict(compare or {})
    if compare.get("task"):
        report.metrics["task"] = compare["task"]
    if compare.get("dataset"):
        report.table = published.comparison_table(report.metrics, **compare)
    return report


def write_report(report: RetrievalReport, *, json_path: Optional[str] = None, markdown_path: Optional[str] = None,
                 top_k_plot: Optional[str] = None, distance_plot: Optional[str] = None) -> dict:
    """Write the requested outputs all-or-nothing (temporary names, renamed once every file
    is written; on any error nothing changes). Returns {kind: path} of what was written."""
    from cvmnet_tf.evaluation import plots

    if distance_plot and report.distance is None:
        raise ValueError("the distance plot needs UTM positions of the queries and the database")
    if markdown_path and report.table is None:
        raise ValueError("the comparison table needs a published setting to compare with")
    paths = {k: v for k, v in (("json", json_path), ("markdown", markdown_path), ("top_k_plot", top_k_plot),
                               ("distance_plot", distance_plot)) if v}
    with atomic_io.atomic_paths(paths) as tmps:
        if "json" in tmps:
            with open(tmps["json"], "w", encoding="utf-8") as f:
                json.dump(report.metrics, f, indent=2, sort_keys=True)
                f.write("\n")
        if "markdown" in tmps:
            with open(tmps["markdown"], "w", encoding="utf-8") as f:
                f.write(report.table)
        if "top_k_plot" in tmps:
            plots.plot_top_k_curve(report.curves, tmps["top_k_plot"], top_percent_k=report.top_percent_k)
        if "distance_plot" in tmps:
            plots.plot_recall_vs_distance(report.distance[0], report.distance[1], tmps["distance_plot"],
                                          baseline=report.distance[2] if len(report.distance) > 2 else None)
    return paths
