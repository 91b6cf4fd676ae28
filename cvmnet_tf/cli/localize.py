"""``cvmnet-localize``: localization on a geo-referenced map (paper section 5.5, Fig. 8 and 10).

    cvmnet-localize --checkpoint runs/demo/Model/cvm_net_i/12 --map_dir data/synthetic_map \\
        --stride_m 10 --output_dir out/localization

Tiles the map every ``--stride_m``, localizes each panorama to its most similar tile (or, with
``--decision votes``, to the one among its most similar tiles that most of the others lie near) and
writes recall within distance, mean error, ``recall_vs_distance.png`` and heatmaps
(:mod:`cvmnet_tf.evaluation.localization`).
"""
from __future__ import annotations

import os

from cvmnet_tf.cli.common import UsageError, parse_numbers, run
from cvmnet_tf.utils.startup import import_tensorflow_quietly

__all__ = ["define_flags", "main"]


def define_flags(fv=None) -> None:
    from absl import flags

    from cvmnet_tf.data.registry import DATASET_NAMES
    from cvmnet_tf.evaluation.geo import DEFAULT_LOCALIZATION_THRESHOLDS_M
    from cvmnet_tf.evaluation.tile_votes import DECISION_RULES, DEFAULT_VOTE_SIGMA_M, DEFAULT_VOTE_TOP_K

    fv = fv or flags.FLAGS
    flags.DEFINE_string("checkpoint", None, "SavedModel folder, checkpoint folder or .keras file.", flag_values=fv)
    flags.DEFINE_string("map_dir", None, "Map folder: map.png, map.json, panoramas.csv (cvmnet-synthetic --map).",
                        flag_values=fv)
    flags.DEFINE_float("stride_m", None, "Distance between tile centres in metres (paper: 5).", flag_values=fv)
    flags.DEFINE_float("tile_m", None, "Tile side on the ground in metres (default: map.json tile_extent_m, else "
                       "100).", flag_values=fv)
    flags.DEFINE_string("output_dir", None, "Folder for localization.json, predictions.csv and the PNGs.",
                        flag_values=fv)
    flags.DEFINE_list("thresholds_m", [f"{t:g}" for t in DEFAULT_LOCALIZATION_THRESHOLDS_M],
                      "Recall thresholds in metres.", flag_values=fv)
    flags.DEFINE_integer("batch_size", 32, "Tiles per forward pass.", flag_values=fv)
    flags.DEFINE_integer("num_heatmaps", 3, "Heatmaps for the first N queries.", flag_values=fv)
    flags.DEFINE_enum("dataset", None, list(DATASET_NAMES), "Ground preprocessing of a checkpoint (default: its "
                      "training dataset).", flag_values=fv)
    flags.DEFINE_boolean("save_tile_descriptors", False, "Also write tile_descriptors.npy and tile_centres.npy.",
                         flag_values=fv)
    flags.DEFINE_string("mixed_precision", None, "Compute precision of a checkpoint's descriptors: none (float32), "
                        "fp16 or bf16 (default: the model's own; a SavedModel keeps its export's).", flag_values=fv)
    flags.DEFINE_enum("decision", "argmax", list(DECISION_RULES), "How a panorama gets its tile: 'argmax' (the "
                      "paper's: the most similar tile) or 'votes' (each of the --vote_top_k most similar tiles votes "
                      "with a Gaussian of --vote_sigma_m metres; the tile among them with the most votes).",
                      flag_values=fv)
    flags.DEFINE_integer("vote_top_k", DEFAULT_VOTE_TOP_K, "Tiles that vote (--decision=votes).", flag_values=fv)
    flags.DEFINE_float("vote_sigma_m", DEFAULT_VOTE_SIGMA_M, "Gaussian of each vote in metres (--decision=votes).",
                       flag_values=fv)
    flags.mark_flags_as_required(["checkpoint", "map_dir", "stride_m", "output_dir"], flag_values=fv)


def _main() -> int:
    from absl import flags

    from cvmnet_tf.evaluation.localization import baseline_line, run_localization, summary_lines
    from cvmnet_tf.evaluation.published import LOCALIZATION_SETTING
    from cvmnet_tf.evaluation.tile_votes import check_decision, describe_decision

    f = flags.FLAGS
    thresholds = parse_numbers(f.thresholds_m, "thresholds_m", float, minimum=0)
    for flag in ("checkpoint", "map_dir"):
        if not os.path.exists(f[flag].value):
            raise UsageError("does not exist", flag, f[flag].value)
    if f.batch_size < 1:
        raise UsageError("must be >= 1", "batch_size", f.batch_size)
    if not f.output_dir.strip():
        raise UsageError("is empty: name the folder for localization.json, predictions.csv and the PNGs",
                         "output_dir")
    if os.path.exists(f.output_dir) and not os.path.isdir(f.output_dir):
        raise UsageError("exists and is not a folder", "output_dir", f.output_dir)
    precision = _precision(f.mixed_precision)
    try:
        check_decision(f.decision, f.vote_top_k, f.vote_sigma_m)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    summary, _ = run_localization(f.checkpoint, f.map_dir, f.output_dir, f.stride_m, f.tile_m,
                                  thresholds_m=thresholds, batch_size=f.batch_size, num_heatmaps=f.num_heatmaps,
                                  dataset=f.dataset, save_tile_descriptors=f.save_tile_descriptors,
                                  precision=precision, decision=f.decision, vote_top_k=f.vote_top_k,
                                  vote_sigma_m=f.vote_sigma_m)
    grid = summary["grid"]
    rule = describe_decision(f.decision, f.vote_top_k, f.vote_sigma_m)
    print(f"Localization of {summary['num_queries']} panoramas on {grid['num_tiles']} tiles of {grid['tile_m']:g} m "
          f"every {grid['stride_m']:g} m, {rule} (random tile = chance level; paper: {LOCALIZATION_SETTING}):")
    for line in summary_lines(summary):
        print(("" if line.startswith("WARNING") else "  ") + line)
    print(baseline_line(summary))
    print(f"All figures: {os.path.join(f.output_dir, 'localization.json')}")
    return 0


def _precision(value):
    from cvmnet_tf.utils.precision import precision_name

    try:
        return None if value is None else precision_name(value)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def main(argv=None) -> None:
    """Entry point of ``cvmnet-localize`` / ``python -m cvmnet_tf.localization``."""
    import_tensorflow_quietly()
    define_flags()
    run(_main, argv, usage=__doc__)
