"""``cvmnet-extract``: descriptors of a dataset split for offline evaluation.

    cvmnet-extract --checkpoint runs/demo/Model/cvm_net_i/12 --dataset cvusa --data_dir data/CVUSA \\
        --split val --output out/val [--distractor_dir DIR]

``--checkpoint``: a checkpoint folder, a ``.keras`` file or a SavedModel folder from
``cvmnet-export``. Files (all or nothing): ``<output>_{satellite,ground,index}.npy`` and an
OriCNN-style ``<output>.mat``; University-1652's test split:
``<output>_{query,gallery}{,_labels}.npy`` (see :mod:`cvmnet_tf.inference.descriptors`).
A model trained with ``--fov`` / ``--random_orientation`` gets the same ground crop of the
test panoramas (fixed-seed headings); ``--random_orientation`` tests any panorama model
with unknown orientation.

``--mixed_precision none|fp16|bf16`` computes a checkpoint's descriptors in that precision
(default: the model's own); ``--agreement`` also extracts in float32 and prints how far the
descriptors and the recall are from it.

Shards (a large split on several machines or GPUs; pair splits):

    cvmnet-extract ... --output out/val --num_shards 4 --shard_index 0   # ... up to 3, anywhere
    cvmnet-extract --merge --output out/val                              # = one run's files

Shard i writes ``out/val.shard-0000i-of-00004_*`` and its manifest ``...json`` (rows,
model, split); ``--shard_mode contiguous`` (default: row ranges) or ``strided`` (every
k-th row); ``--merge`` checks the set and writes ``out/val_*`` as a single run
(:mod:`cvmnet_tf.inference.shards`).
"""
from __future__ import annotations

import os

from cvmnet_tf.cli.common import UsageError, run
from cvmnet_tf.utils.startup import import_tensorflow_quietly

__all__ = ["define_flags", "main"]


def define_flags(fv=None) -> None:
    from absl import flags

    from cvmnet_tf.data.registry import DATASET_NAMES
    from cvmnet_tf.training.options import define_loader_option_flags

    fv = fv or flags.FLAGS
    flags.DEFINE_string("checkpoint", None, "Checkpoint folder, .keras file or SavedModel folder.", flag_values=fv)
    flags.DEFINE_enum("dataset", None, list(DATASET_NAMES), "Dataset layout of --data_dir.", flag_values=fv)
    flags.DEFINE_string("data_dir", None, "Dataset root folder.", flag_values=fv)
    flags.DEFINE_string("split", "val", "Split name (cvusa: train|val; cvact: train|val|test; vohays: "
                        "train|val|test; university1652: train|test; pairs: the list file).", flag_values=fv)
    flags.DEFINE_string("output", None, "Output prefix: <prefix>_satellite.npy, _ground.npy, _index.npy, .mat.",
                        flag_values=fv)
    flags.DEFINE_string("distractor_dir", None, "Folder of extra satellite images -> <prefix>_distractors.npy "
                        "(University-1652: appended to the satellite gallery).", flag_values=fv)
    flags.DEFINE_integer("batch_size", 16, "Images per forward pass.", flag_values=fv)
    flags.DEFINE_integer("max_pairs", 0, "Use only the first N pairs (labelled splits: queries) (0: all).",
                         flag_values=fv)
    flags.DEFINE_float("fov", None, "Ground field of view in degrees (default: the model's training --fov; a "
                       "model's FoV is fixed by its ground input width).", flag_values=fv)
    flags.DEFINE_boolean("random_orientation", None, "Unknown orientation: crop every test panorama at its fixed-seed "
                         "heading (default: as the model was trained).", flag_values=fv)
    flags.DEFINE_integer("fov_test_seed", None, "Seed of the test headings (default: the model's, 2019 as DSM).",
                         flag_values=fv)
    flags.DEFINE_string("mixed_precision", None, "Compute precision of a checkpoint: none (float32), fp16 or bf16 "
                        "(default: the model's own; a SavedModel keeps its export's).", flag_values=fv)
    flags.DEFINE_boolean("agreement", False, "With --mixed_precision fp16/bf16: also extract in float32 and print "
                         "the cosine and recall differences.", flag_values=fv)
    flags.DEFINE_integer("num_shards", 1, "Cut the pairs (and distractors) into this many shards.", flag_values=fv)
    flags.DEFINE_integer("shard_index", 0, "The shard this run encodes (0 .. --num_shards - 1).", flag_values=fv)
    flags.DEFINE_enum("shard_mode", "contiguous", ["contiguous", "strided"], "Shard i: rows [i N/k, (i+1) N/k) "
                      "(contiguous) or rows i, i+k, ... (strided).", flag_values=fv)
    flags.DEFINE_boolean("merge", False, "Join the shards of --output into the single-run files (needs only "
                         "--output).", flag_values=fv)
    define_loader_option_flags(fv, exclude=("distractor_dir",))
    flags.mark_flags_as_required(["output"], flag_values=fv)


def _main() -> int:
    from absl import flags

    from cvmnet_tf.inference.descriptors import (agreement_lines, extract_descriptors, precision_agreement,
                                                 write_descriptors)
    from cvmnet_tf.inference.shards import check_shard_arguments, write_shard
    from cvmnet_tf.training.options import loader_options_from_flags

    f = flags.FLAGS
    if f.merge:
        return _merge(f)
    missing = [name for name in ("checkpoint", "dataset", "data_dir") if f[name].value is None]
    if missing:
        raise UsageError(f"{', '.join('--' + m for m in missing)} required (all but --output are optional with "
                         "--merge only)")
    if f.batch_size < 1:
        raise UsageError("must be >= 1", "batch_size", f.batch_size)
    if f.max_pairs < 0:
        raise UsageError("must be >= 0", "max_pairs", f.max_pairs)
    if not f.output.strip() or f.output.endswith(os.sep) or os.path.isdir(f.output):
        raise UsageError("must be a file prefix such as out/val (it writes <prefix>_satellite.npy, ...)", "output",
                         f.output)
    if not os.path.isdir(f.data_dir):
        raise UsageError("no such folder (see data/README.md)", "data_dir", f.data_dir)
    if not os.path.exists(f.checkpoint):
        raise UsageError("does not exist", "checkpoint", f.checkpoint)
    try:
        options = loader_options_from_flags(f.dataset, f, exclude=("distractor_dir",))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if f.fov is not None and not 0 < f.fov <= 360:
        raise UsageError("the field of view must be in (0, 360] degrees", "fov", f.fov)
    precision = _precision(f.mixed_precision)
    if f.agreement and precision in (None, "none"):
        raise UsageError("compares --mixed_precision fp16 or bf16 with float32: give one of them", "agreement")
    try:
        check_shard_arguments(f.shard_index, f.num_shards, f.shard_mode)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    common = dict(batch_size=f.batch_size, distractor_dir=f.distractor_dir, max_pairs=f.max_pairs, fov=f.fov,
                  random_orientation=f.random_orientation, fov_test_seed=f.fov_test_seed, shard_index=f.shard_index,
                  num_shards=f.num_shards, shard_mode=f.shard_mode, **options)
    result = extract_descriptors(f.checkpoint, f.dataset, f.data_dir, f.split, precision=precision, **common)
    paths = write_shard(f.output, result) if f.num_shards > 1 else write_descriptors(f.output, result)
    if f.agreement:
        reference = extract_descriptors(f.checkpoint, f.dataset, f.data_dir, f.split, precision="none",
                                        progress=False, **common)
        for line in agreement_lines(precision_agreement(reference, result)):
            print(line)
    first = result["query"] if "query" in result else result["satellite"]
    what = "queries" if "query" in result else "pairs"
    print(f"{first.shape[0]} {what}, {first.shape[1]}-d descriptors ({len(result['skipped'])} skipped):")
    for p in paths.values():
        print("  " + p)
    return 0


def _precision(value):
    from cvmnet_tf.utils.precision import precision_name

    try:
        return None if value is None else precision_name(value)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _merge(f) -> int:
    from cvmnet_tf.inference.descriptors import write_descriptors
    from cvmnet_tf.inference.shards import merge_shards

    given = [name for name in ("checkpoint", "dataset", "data_dir", "distractor_dir", "mixed_precision")
             if f[name].present] + [name for name in ("num_shards", "shard_index", "agreement") if f[name].present]
    if given:
        raise UsageError(f"--merge reads everything from the shard manifests of --output; drop "
                         f"{', '.join('--' + g for g in given)}")
    if any(os.path.exists(p) for p in (f.output + "_satellite.npy", f.output + ".mat")):
        raise UsageError("already holds merged descriptors; move them away first (never overwritten)", "output",
                         f.output)
    result = merge_shards(f.output)
    paths = write_descriptors(f.output, result)
    print(f"{result['satellite'].shape[0]} pairs, {result['satellite'].shape[1]}-d descriptors merged:")
    for p in paths.values():
        print("  " + p)
    return 0


def main(argv=None) -> None:
    """Entry point of ``cvmnet-extract`` / ``python -m cvmnet_tf.extract``."""
    import_tensorflow_quietly()
    define_flags()
    run(_main, argv, usage=__doc__)
