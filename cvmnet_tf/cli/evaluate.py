r"""``cvmnet-evaluate``: retrieval metrics of saved descriptors.

Examples::

  cvmnet-evaluate --query grd.npy --database sat.npy --output metrics.json \
      --top_k_plot curve.png --compare_model cvm_net_i --compare_dataset cvusa
  cvmnet-evaluate --descriptors_mat descriptors.mat \
      --query_utm q_utm.npy --database_utm d_utm.npy --geo_threshold_m 5
  cvmnet-evaluate --query drone.npy --database sat.npy \
      --query_labels drone_ids.npy --database_labels sat_ids.npy \
      --distractors distractors.npy --compare_dataset university1652 --compare_task drone_to_satellite

Inputs: ``.npy`` float arrays (N, dim), query row i matching database row i; or an
OriCNN-compatible ``.mat`` with ``grd_global_descriptor`` (queries) and
``sat_global_descriptor`` (database) (what ``cvmnet-extract`` writes). ``--distractors``
rows are appended to the database. UTM files: ``.npy`` or text (N, 2) in metres.
Recall@1% uses CVM-Net's cut-off K = int(0.01 N) + 1 (N = database size). With
``--query_labels``/``--database_labels`` (integer class labels, .npy; -1 = distractor) a
database image is a true match of every query with its label (University-1652): recall@K
and AP are reported instead; ``--distractors`` rows get label -1. All outputs are written
only after every metric was computed (all or nothing). The metrics: fractions (0..1).
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np

from cvmnet_tf.cli.common import UsageError, parse_numbers, run

__all__ = ["define_flags", "main"]


def define_flags(fv=None) -> None:
    """Register this command's flags in ``fv`` (default: absl's global FLAGS)."""
    from absl import flags

    from cvmnet_tf.data.registry import DATASETS
    from cvmnet_tf.data.university1652 import TASKS
    from cvmnet_tf.evaluation.geo import DEFAULT_GEO_THRESHOLD_M, DEFAULT_LOCALIZATION_THRESHOLDS_M

    fv = fv or flags.FLAGS
    published = sorted({name for spec in DATASETS.values() for name in spec.published})
    f = {kind: getattr(flags, f"DEFINE_{kind}") for kind in ("string", "float", "list", "bool", "integer")}
    f["string"]("query", None, "Query (ground) descriptors, .npy (Nq, dim).", flag_values=fv)
    f["string"]("database", None, "Database (satellite) descriptors, .npy (Ndb >= Nq, dim).", flag_values=fv)
    f["string"]("descriptors_mat", None, "OriCNN-style .mat with grd_global_descriptor and sat_global_descriptor "
                "(instead of --query/--database).", flag_values=fv)
    f["string"]("distractors", None, "Extra satellite descriptors .npy appended to the database.", flag_values=fv)
    f["string"]("query_utm", None, "Query positions (Nq, 2) metres, .npy or text.", flag_values=fv)
    f["string"]("database_utm", None, "Database positions (Ndb, 2) metres, .npy or text (distractors included).",
                flag_values=fv)
    f["float"]("geo_threshold_m", DEFAULT_GEO_THRESHOLD_M, "Geo-recall radius in metres (OriCNN RecallGeo.m: 5).",
               flag_values=fv)
    f["list"]("localization_thresholds_m", [f"{t:g}" for t in DEFAULT_LOCALIZATION_THRESHOLDS_M],
              "Distances (m) for localization recall (fraction of queries whose best match lies within d).",
              flag_values=fv)
    f["list"]("ks", ["1", "5", "10"], "K values of recall@K.", flag_values=fv)
    f["float"]("percent", 1.0, "Top-percent cut-off (K = int(0.01 * percent * N) + 1).", flag_values=fv)
    f["bool"]("both_directions", False, "Also evaluate satellite -> ground.", flag_values=fv)
    f["integer"]("block_size", None, "Query rows per block (default: about 128 MiB of similarities).", flag_values=fv)
    f["string"]("output", None, "Write the metrics (JSON, fractions 0..1) here.", flag_values=fv)
    flags.DEFINE_alias("output_json", "output", flag_values=fv)  # deprecated spelling
    f["string"]("top_k_plot", None, "Write the top-K recall curve PNG here.", flag_values=fv)
    f["integer"]("top_k_max", 100, "Largest K on the top-K curve.", flag_values=fv)
    f["string"]("distance_plot", None, "Write the recall-vs-distance PNG here (needs UTM).", flag_values=fv)
    f["string"]("compare_model", None, "Published model to compare with, e.g. cvm_net_i.", flag_values=fv)
    f["string"]("compare_dataset", None, f"Published dataset: {', '.join(published)} (university1652: with "
                "--query_labels/--database_labels; --compare_model optional there).", flag_values=fv)
    f["string"]("compare_backbone", None, "Published backbone: vgg16 or alexnet.", flag_values=fv)
    f["string"]("compare_loss", None, "Published loss: weighted_soft_margin_triplet, weighted_quadruplet, "
                "contrastive.", flag_values=fv)
    f["string"]("query_labels", None, "Integer class label per query, .npy (Nq,); with --database_labels: several "
                "true matches per query, recall@K and AP (University-1652).", flag_values=fv)
    f["string"]("database_labels", None, "Integer class label per database row, .npy (Ndb,) for the --database "
                "rows (then --distractors rows get -1) or for database + distractors; -1 = distractor.",
                flag_values=fv)
    f["string"]("compare_task", None, f"University-1652 task of the comparison: {' or '.join(TASKS)} (default: "
                "both).", flag_values=fv)
    f["string"]("comparison_md", None, "Write the Markdown comparison table here.", flag_values=fv)


def _check_flags(fv) -> None:
    """Every contradiction between flags, before anything is read."""
    if fv.descriptors_mat and (fv.query or fv.database):
        raise UsageError("give either --descriptors_mat or --query/--database, not both")
    if not fv.descriptors_mat and not (fv.query and fv.database):
        raise UsageError("--query and --database are required (or --descriptors_mat)")
    for flag in ("query", "database", "descriptors_mat", "distractors", "query_utm", "database_utm", "query_labels",
                 "database_labels"):
        if fv[flag].value and not os.path.isfile(fv[flag].value):
            raise UsageError("file not found", flag, fv[flag].value)
    if fv.top_k_max < 1:
        raise UsageError("must be >= 1", "top_k_max", fv.top_k_max)
    if bool(fv.query_utm) != bool(fv.database_utm):
        raise UsageError("--query_utm and --database_utm must be given together")
    if fv.distance_plot and not fv.query_utm:
        raise UsageError("--distance_plot needs --query_utm and --database_utm")
    if not fv.geo_threshold_m >= 0:
        raise UsageError("must be >= 0 metres", "geo_threshold_m", fv.geo_threshold_m)
    labelled = bool(fv.query_labels) or bool(fv.database_labels)
    if labelled and not (fv.query_labels and fv.database_labels):
        raise UsageError("--query_labels and --database_labels must be given together")
    if labelled and (fv.query_utm or fv.both_directions or fv.distance_plot):
        raise UsageError("--query_labels/--database_labels cannot be combined with --query_utm/--database_utm, "
                         "--both_directions or --distance_plot")
    if labelled and fv.compare_model and not fv.compare_dataset:
        raise UsageError("--compare_model needs --compare_dataset")
    if not labelled and bool(fv.compare_model) != bool(fv.compare_dataset):
        raise UsageError("--compare_model and --compare_dataset must be given together")
    if not labelled and fv.compare_task:
        raise UsageError("--compare_task needs --query_labels/--database_labels (University-1652 metrics)")
    if fv.comparison_md and not fv.compare_dataset:
        raise UsageError("--comparison_md needs --compare_dataset (and --compare_model)")
    for flag in ("output", "top_k_plot", "distance_plot", "comparison_md"):
        path = fv[flag].value
        if path is not None and not path.strip():
            raise UsageError("is empty; give a file name", flag, path)
        if path is not None and (os.path.isdir(path) or path.endswith(os.sep)):
            raise UsageError("is a folder; give a file name (its folder is created if missing)", flag, path)


def _load_descriptors(fv):
    """(query, database, database rows before distractors, query name, database name)."""
    from cvmnet_tf.evaluation import metrics
    from cvmnet_tf.inference.descriptors import read_npy, read_oricnn_mat

    if fv.descriptors_mat:
        query, database = read_oricnn_mat(fv.descriptors_mat)
        qname = f"--descriptors_mat {fv.descriptors_mat}: grd_global_descriptor"
        dname = f"--descriptors_mat {fv.descriptors_mat}: sat_global_descriptor"
    else:
        query, database = read_npy(fv.query, "--query"), read_npy(fv.database, "--database")
        qname, dname = f"--query {fv.query}", f"--database {fv.database}"
    query = metrics.check_descriptors(query, qname)
    database = metrics.check_descriptors(database, dname)
    rows = database.shape[0]
    if fv.distractors:
        dis = metrics.check_descriptors(read_npy(fv.distractors, "--distractors"), f"--distractors {fv.distractors}")
        if dis.shape[1] != database.shape[1]:
            raise ValueError(f"descriptor dimensions differ: --distractors has dim {dis.shape[1]}, "
                             f"{dname} has dim {database.shape[1]}")
        database = np.concatenate([database, dis], axis=0)
    return query, database, rows, qname, dname


def _load_labels(fv, num_query, num_rows, num_database, qname):
    from cvmnet_tf.evaluation import multi_match
    from cvmnet_tf.inference.descriptors import read_npy

    q_labels = multi_match.check_labels(read_npy(fv.query_labels, "--query_labels"), num_query,
                                        f"--query_labels {fv.query_labels} (for {qname})", allow_distractors=False)
    d_labels = read_npy(fv.database_labels, "--database_labels")
    if d_labels.ndim != 1 or d_labels.shape[0] not in (num_rows, num_database):
        expect = (f"{num_rows} (database rows) or {num_database} (with distractors)"
                  if num_database != num_rows else str(num_rows))
        raise ValueError(f"--database_labels {fv.database_labels}: expected {expect} labels (1-D); got shape "
                         f"{d_labels.shape}")
    d_labels = multi_match.check_labels(d_labels, d_labels.shape[0], f"--database_labels {fv.database_labels}",
                                        allow_distractors=True)
    if d_labels.shape[0] < num_database:
        d_labels = np.concatenate([d_labels, np.full(num_database - d_labels.shape[0], -1, np.int64)])
    return q_labels, d_labels


def _main() -> int:
    from absl import flags

    from cvmnet_tf.evaluation import geo
    from cvmnet_tf.evaluation.report import retrieval_report, write_report
    from cvmnet_tf.inference.descriptors import read_utm

    fv = flags.FLAGS
    _check_flags(fv)
    ks = parse_numbers(fv.ks, "ks", int, minimum=1)
    thresholds = parse_numbers(fv.localization_thresholds_m, "localization_thresholds_m", float, minimum=0)
    query, database, rows, qname, dname = _load_descriptors(fv)
    options = dict(ks=ks, percent=fv.percent, block_size=fv.block_size, top_k_max=fv.top_k_max,
                   query_name=qname, database_name=dname,
                   compare={"model": fv.compare_model, "dataset": fv.compare_dataset,
                            "backbone": fv.compare_backbone, "loss": fv.compare_loss})
    if fv.query_labels:
        q_labels, d_labels = _load_labels(fv, query.shape[0], rows, database.shape[0], qname)
        options["compare"]["task"] = fv.compare_task
        report = retrieval_report(query, database, query_labels=q_labels, database_labels=d_labels, **options)
    else:
        utm = {}
        if fv.query_utm:
            utm = {"query_utm": geo.check_utm(read_utm(fv.query_utm, "--query_utm"), query.shape[0],
                                              f"--query_utm {fv.query_utm}"),
                   "database_utm": geo.check_utm(read_utm(fv.database_utm, "--database_utm"), database.shape[0],
                                                 f"--database_utm {fv.database_utm}")}
        report = retrieval_report(query, database, both_directions=fv.both_directions,
                                  geo_threshold_m=fv.geo_threshold_m, localization_thresholds_m=thresholds,
                                  **utm, **options)
    write_report(report, json_path=fv.output, markdown_path=fv.comparison_md, top_k_plot=fv.top_k_plot,
                 distance_plot=fv.distance_plot)
    print(json.dumps(report.metrics, indent=2, sort_keys=True))
    if report.table:
        print(report.table)
    for warning in report.warnings:
        print(f"WARNING: {warning}", file=sys.stderr, flush=True)
    return 0


def main(argv=None) -> None:
    """Entry point of ``cvmnet-evaluate`` / ``python -m cvmnet_tf.evaluate``."""
    define_flags()
    run(_main, argv, usage=__doc__)
