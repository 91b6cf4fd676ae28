r"""Evaluate retrieval from descriptor files: ``python -m cvmnet_tf.evaluate``.

Examples::

  python -m cvmnet_tf.evaluate --query grd.npy --database sat.npy \
      --output_json metrics.json --top_k_plot curve.png \
      --compare_model cvm_net_i --compare_dataset cvusa
  python -m cvmnet_tf.evaluate --descriptors_mat descriptors.mat \
      --query_utm q_utm.npy --database_utm d_utm.npy --geo_threshold_m 5

  python -m cvmnet_tf.evaluate --query drone.npy --database sat.npy \
      --query_labels drone_ids.npy --database_labels sat_ids.npy \
      --distractors distractors.npy --compare_dataset university1652 --compare_task drone_to_satellite

Inputs: ``.npy`` float arrays (N, dim), query row i matching database row i;
or an OriCNN-compatible ``.mat`` with ``grd_global_descriptor`` (queries) and
``sat_global_descriptor`` (database). ``--distractors`` rows are appended to
the database. UTM files: ``.npy`` or text (N, 2) in metres.
Recall@1% uses CVM-Net's cut-off K = int(0.01 N) + 1 (N = database size).
With ``--query_labels``/``--database_labels`` (integer class labels, .npy; -1 =
distractor) a database image is a true match of every query with its label
(University-1652): recall@K and AP are reported instead (see
:mod:`cvmnet_tf.evaluation.multi_match`); ``--distractors`` rows get label -1.
All outputs are written only after every metric was computed, each atomically
(``<name>.tmp-<pid>`` then rename); on any error nothing is written.
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np
from absl import app, flags


def define_flags(fv=flags.FLAGS) -> None:
    """Register this CLI's flags (called only when run as a program)."""
    flags.DEFINE_string("query", None, "Query (ground) descriptors, .npy (Nq, dim).", flag_values=fv)
    flags.DEFINE_string("database", None, "Database (satellite) descriptors, .npy (Ndb >= Nq, dim).",
                        flag_values=fv)
    flags.DEFINE_string("descriptors_mat", None, "OriCNN-style .mat with grd_global_descriptor and "
                        "sat_global_descriptor (instead of --query/--database).", flag_values=fv)
    flags.DEFINE_string("distractors", None, "Extra satellite descriptors .npy appended to the database.",
                        flag_values=fv)
    flags.DEFINE_string("query_utm", None, "Query positions (Nq, 2) metres, .npy or text.", flag_values=fv)
    flags.DEFINE_string("database_utm", None, "Database positions (Ndb, 2) metres, .npy or text "
                        "(distractors included).", flag_values=fv)
    flags.DEFINE_float("geo_threshold_m", 5.0, "Geo-recall radius in metres (OriCNN RecallGeo.m: 5).",
                       flag_values=fv)
    flags.DEFINE_list("localization_thresholds_m", ["25", "50", "100", "200", "500", "1000"],
                      "Distances (m) for localization recall (fraction of queries whose best match lies "
                      "within d).", flag_values=fv)
    flags.DEFINE_list("ks", ["1", "5", "10"], "K values of recall@K.", flag_values=fv)
    flags.DEFINE_float("percent", 1.0, "Top-percent cut-off (K = int(0.01 * percent * N) + 1).",
                       flag_values=fv)
    flags.DEFINE_bool("both_directions", False, "Also evaluate satellite -> ground.", flag_values=fv)
    flags.DEFINE_integer("block_size", None, "Query rows per block (default: about 128 MiB of similarities).",
                         flag_values=fv)
    flags.DEFINE_string("output_json", None, "Write the metrics (fractions 0..1) here.", flag_values=fv)
    flags.DEFINE_string("top_k_plot", None, "Write the top-K recall curve PNG here.", flag_values=fv)
    flags.DEFINE_integer("top_k_max", 100, "Largest K on the top-K curve.", flag_values=fv)
    flags.DEFINE_string("distance_plot", None, "Write the recall-vs-distance PNG here (needs UTM).",
                        flag_values=fv)
    flags.DEFINE_string("compare_model", None, "Published model to compare with, e.g. cvm_net_i.", flag_values=fv)
    flags.DEFINE_string("compare_dataset", None, "Published dataset: cvusa, cvact_val, vohays, university1652 "
                        "(the latter with --query_labels/--database_labels; --compare_model optional there).",
                        flag_values=fv)
    flags.DEFINE_string("compare_backbone", None, "Published backbone: vgg16 or alexnet.", flag_values=fv)
    flags.DEFINE_string("compare_loss", None, "Published loss: weighted_soft_margin_triplet, "
                        "weighted_quadruplet, contrastive.", flag_values=fv)
    flags.DEFINE_string("query_labels", None, "Integer class label per query, .npy (Nq,); with "
                        "--database_labels: several true matches per query, recall@K and AP (University-1652).",
                        flag_values=fv)
    flags.DEFINE_string("database_labels", None, "Integer class label per database row, .npy (Ndb,) for the "
                        "--database rows (then --distractors rows get -1) or for database + distractors; -1 = "
                        "distractor.", flag_values=fv)
    flags.DEFINE_string("compare_task", None, "University-1652 task of the comparison: drone_to_satellite or "
                        "satellite_to_drone (default: both).", flag_values=fv)
    flags.DEFINE_string("comparison_md", None, "Write the Markdown comparison table here.", flag_values=fv)


def _load_npy(path: str, flag: str) -> np.ndarray:
    if not os.path.isfile(path):
        raise ValueError(f"--{flag}: file not found: {path}")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"--{flag}: cannot read {path} as .npy: {exc}") from exc


def _load_mat(path: str):
    if not os.path.isfile(path):
        raise ValueError(f"--descriptors_mat: file not found: {path}")
    from scipy.io import loadmat

    try:
        mat = loadmat(path)
    except (OSError, ValueError, NotImplementedError) as exc:
        raise ValueError(f"--descriptors_mat: cannot read {path} (MATLAB v7.3 files are not supported): "
                         f"{exc}") from exc
    missing = [k for k in ("grd_global_descriptor", "sat_global_descriptor") if k not in mat]
    if missing:
        raise ValueError(f"--descriptors_mat: {path} lacks {missing}; found "
                         f"{sorted(k for k in mat if not k.startswith('__'))}")
    return mat["grd_global_descriptor"], mat["sat_global_descriptor"]


def _load_utm(path: str, flag: str) -> np.ndarray:
    if path.endswith(".npy"):
        return _load_npy(path, flag)
    if not os.path.isfile(path):
        raise ValueError(f"--{flag}: file not found: {path}")
    try:
        return np.loadtxt(path, delimiter="," if path.endswith(".csv") else None, ndmin=2)
    except ValueError as exc:
        raise ValueError(f"--{flag}: cannot parse {path} as (N, 2) numbers: {exc}") from exc


def _floats(values, flag):
    try:
        return [float(v) for v in values]
    except ValueError as exc:
        raise ValueError(f"--{flag}: expected numbers; got {values}") from exc


def _ints(values, flag):
    try:
        out = [int(v) for v in values]
    except ValueError as exc:
        raise ValueError(f"--{flag}: expected integers; got {values}") from exc
    if not out or min(out) < 1:
        raise ValueError(f"--{flag}: expected positive integers; got {values}")
    return out


def run(fv=flags.FLAGS) -> dict:
    """Compute all requested metrics, then write the outputs. Returns the metrics dict."""
    from cvmnet_tf.evaluation import geo, metrics, published

    # ---- load and validate everything first -------------------------------------------------
    if fv.descriptors_mat:
        if fv.query or fv.database:
            raise ValueError("give either --descriptors_mat or --query/--database, not both")
        query, database = _load_mat(fv.descriptors_mat)
        qname = f"--descriptors_mat {fv.descriptors_mat}: grd_global_descriptor"
        dname = f"--descriptors_mat {fv.descriptors_mat}: sat_global_descriptor"
    else:
        if not fv.query or not fv.database:
            raise ValueError("--query and --database are required (or --descriptors_mat)")
        query, database = _load_npy(fv.query, "query"), _load_npy(fv.database, "database")
        qname, dname = f"--query {fv.query}", f"--database {fv.database}"
    query = metrics.check_descriptors(query, qname)
    database = metrics.check_descriptors(database, dname)
    num_database_rows = database.shape[0]
    if fv.distractors:
        dis = metrics.check_descriptors(_load_npy(fv.distractors, "distractors"), f"--distractors {fv.distractors}")
        if dis.shape[1] != database.shape[1]:
            raise ValueError(f"descriptor dimensions differ: --distractors has dim {dis.shape[1]}, "
                             f"{dname} has dim {database.shape[1]}")
        database = np.concatenate([database, dis], axis=0)
    ks = _ints(fv.ks, "ks")
    loc_thresholds = _floats(fv.localization_thresholds_m, "localization_thresholds_m")
    if fv.top_k_max < 1:
        raise ValueError(f"--top_k_max must be >= 1; got {fv.top_k_max}")
    if bool(fv.query_utm) != bool(fv.database_utm):
        raise ValueError("--query_utm and --database_utm must be given together")
    if fv.distance_plot and not fv.query_utm:
        raise ValueError("--distance_plot needs --query_utm and --database_utm")
    if bool(fv.compare_model) != bool(fv.compare_dataset) and not (fv.query_labels or fv.database_labels):
        raise ValueError("--compare_model and --compare_dataset must be given together")
    if fv.comparison_md and not fv.compare_dataset:
        raise ValueError("--comparison_md needs --compare_dataset (and --compare_model)")
    if query.shape[1] != database.shape[1]:
        raise ValueError(f"descriptor dimensions differ: {qname} has dim {query.shape[1]}, "
                         f"{dname} has dim {database.shape[1]}")
    labelled = bool(fv.query_labels) or bool(fv.database_labels)
    if labelled:
        if not (fv.query_labels and fv.database_labels):
            raise ValueError("--query_labels and --database_labels must be given together")
        if fv.query_utm or fv.both_directions or fv.distance_plot:
            raise ValueError("--query_labels/--database_labels cannot be combined with --query_utm/--database_utm, "
                             "--both_directions or --distance_plot")
        from cvmnet_tf.evaluation import multi_match

        q_labels = multi_match.check_labels(_load_npy(fv.query_labels, "query_labels"), query.shape[0],
                                            f"--query_labels {fv.query_labels} (for {qname})",
                                            allow_distractors=False)
        d_labels = _load_npy(fv.database_labels, "database_labels")
        if d_labels.ndim != 1 or d_labels.shape[0] not in (num_database_rows, database.shape[0]):
            expect = (f"{num_database_rows} (database rows) or {database.shape[0]} (with distractors)"
                      if database.shape[0] != num_database_rows else str(num_database_rows))
            raise ValueError(f"--database_labels {fv.database_labels}: expected {expect} labels (1-D); got shape "
                             f"{d_labels.shape}")
        d_labels = multi_match.check_labels(d_labels, d_labels.shape[0], f"--database_labels {fv.database_labels}",
                                            allow_distractors=True)
        if d_labels.shape[0] < database.shape[0]:
            d_labels = np.concatenate([d_labels, np.full(database.shape[0] - d_labels.shape[0], -1, np.int64)])
        if fv.compare_model and not fv.compare_dataset:
            raise ValueError("--compare_model needs --compare_dataset")
    elif fv.compare_task:
        raise ValueError("--compare_task needs --query_labels/--database_labels (University-1652 metrics)")
    if labelled:
        return _run_labelled(fv, query, database, q_labels, d_labels, qname, dname, ks)
    near = None
    if fv.query_utm:
        q_utm = geo.check_utm(_load_utm(fv.query_utm, "query_utm"), query.shape[0], f"--query_utm {fv.query_utm}")
        d_utm = geo.check_utm(_load_utm(fv.database_utm, "database_utm"), database.shape[0],
                              f"--database_utm {fv.database_utm}")
        if not (fv.geo_threshold_m >= 0):
            raise ValueError(f"--geo_threshold_m must be >= 0; got {fv.geo_threshold_m}")
        near = geo.near_sets(q_utm, d_utm, fv.geo_threshold_m)
    directions = ("ground_to_satellite", "satellite_to_ground") if fv.both_directions else ("ground_to_satellite",)

    # ---- one blocked pass ------------------------------------------------------------------------
    result = metrics.compute_ranks(query, database, directions=directions, near=near, want_best=near is not None,
                                   block_size=fv.block_size, query_name=qname, database_name=dname)
    out = metrics.summarize_ranks(result, ks=ks, percent=fv.percent)
    out["top_percent_rule"] = "rank < int(0.01 * percent * N) + 1 (CVM-Net/OriCNN); N = database size"
    errors = None
    if near is not None:
        out["geo/threshold_m"] = float(fv.geo_threshold_m)
        errors = geo.errors_from_best(result.best_index, q_utm, d_utm)
        out.update(geo.localization_summary(errors, loc_thresholds))
    table = None
    if fv.compare_model:
        table = published.comparison_table(out, model=fv.compare_model, dataset=fv.compare_dataset,
                                           backbone=fv.compare_backbone, loss=fv.compare_loss)

    _write_outputs(fv, out, table, result=result, errors=errors, loc_thresholds=loc_thresholds)
    return out


def _run_labelled(fv, query, database, q_labels, d_labels, qname, dname, ks) -> dict:
    """Several true matches per query (class labels): recall@K, AP, optional top-K curve and comparison."""
    from cvmnet_tf.evaluation import multi_match, published

    indptr, positions = multi_match.match_positions(query, database, q_labels, d_labels, fv.block_size,
                                                    query_name=qname, gallery_name=dname)
    out = multi_match.summarize_positions(indptr, positions, ks, d_labels)
    if fv.compare_task:
        out["task"] = fv.compare_task
    table = None
    if fv.compare_dataset:
        table = published.comparison_table(out, model=fv.compare_model, dataset=fv.compare_dataset,
                                           backbone=fv.compare_backbone, loss=fv.compare_loss, task=fv.compare_task)
    _write_outputs(fv, out, table, first_ranks=positions[indptr[:-1]], num_database=database.shape[0])
    return out


def _write_outputs(fv, out, table, *, result=None, errors=None, loc_thresholds=None, first_ranks=None,
                   num_database=None) -> None:
    """Write the JSON / Markdown / PNG outputs atomically (all or nothing), then print the metrics."""
    from cvmnet_tf.evaluation import geo, metrics

    pending = []

    def stage(path, writer):
        tmp = f"{path}.tmp-{os.getpid()}"
        pending.append((tmp, path))
        writer(tmp)

    try:
        if fv.output_json:
            def write_json(p):
                with open(p, "w") as f:
                    json.dump(out, f, indent=2, sort_keys=True)
                    f.write("\n")
            stage(fv.output_json, write_json)
        if fv.comparison_md:
            def write_md(p):
                with open(p, "w") as f:
                    f.write(table)
            stage(fv.comparison_md, write_md)
        if fv.top_k_plot or fv.distance_plot:
            from cvmnet_tf.evaluation import plots

            if fv.top_k_plot and first_ranks is not None:
                max_k = min(fv.top_k_max, num_database)
                curve = {"first true match": metrics.top_k_curve(first_ranks, max_k)}
                stage(fv.top_k_plot, lambda p: _rename_from(plots.plot_top_k_curve(curve, p + ".png"), p))
            elif fv.top_k_plot:
                max_k = min(fv.top_k_max, result.num_database)
                curves = {}
                if result.num_distractors > 0:
                    curves["without distractors"] = metrics.top_k_curve(
                        result.ground_to_satellite_no_distractors, max_k)
                    curves[f"with {result.num_distractors} distractors"] = metrics.top_k_curve(
                        result.ground_to_satellite, max_k)
                else:
                    curves["ground -> satellite"] = metrics.top_k_curve(result.ground_to_satellite, max_k)
                if result.satellite_to_ground is not None:
                    curves["satellite -> ground"] = metrics.top_k_curve(result.satellite_to_ground, max_k)
                if result.geo is not None:
                    curves[f"geo ({fv.geo_threshold_m:g} m)"] = metrics.top_k_curve(result.geo, max_k)
                k1 = out["top_percent_k"]
                stage(fv.top_k_plot, lambda p: _rename_from(
                    plots.plot_top_k_curve(curves, p + ".png", top_percent_k=k1 if k1 <= max_k else None), p))
            if fv.distance_plot:
                rec = geo.recall_at_distance(errors, loc_thresholds)
                stage(fv.distance_plot, lambda p: _rename_from(
                    plots.plot_recall_vs_distance(loc_thresholds, rec, p + ".png"), p))
        for tmp, path in pending:
            os.replace(tmp, path)
    finally:
        for tmp, _ in pending:
            if os.path.exists(tmp):
                os.remove(tmp)
    print(json.dumps(out, indent=2, sort_keys=True))
    if table:
        print(table)


def _rename_from(src: str, dst: str) -> None:
    os.replace(src, dst)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        run()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    define_flags()
    app.run(main)
