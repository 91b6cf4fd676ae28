"""``cvmnet-extract``: descriptors of a dataset split for offline evaluation.

    cvmnet-extract --checkpoint runs/demo/Model/cvm_net_i/6 --dataset cvusa --data_dir data/CVUSA \\
        --split val --output out/val [--distractor_dir DIR]

``--checkpoint``: a checkpoint folder, a ``.keras`` file or a SavedModel folder from
``cvmnet-export``. Files (all or nothing): ``<output>_{satellite,ground,index}.npy`` and an
OriCNN-style ``<output>.mat``; University-1652's test split:
``<output>_{query,gallery}{,_labels}.npy`` (see :mod:`cvmnet_tf.inference.descriptors`).
A model trained with ``--fov`` / ``--random_orientation`` gets the same ground crop of the
test panoramas (fixed-seed headings); ``--random_orientation`` tests any panorama model
with unknown orientation.
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
    define_loader_option_flags(fv, exclude=("distractor_dir",))
    flags.mark_flags_as_required(["checkpoint", "dataset", "data_dir", "output"], flag_values=fv)


def _main() -> int:
    from absl import flags

    from cvmnet_tf.inference.descriptors import extract_descriptors, write_descriptors
    from cvmnet_tf.training.options import loader_options_from_flags

    f = flags.FLAGS
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
    result = extract_descriptors(f.checkpoint, f.dataset, f.data_dir, f.split, batch_size=f.batch_size,
                                 distractor_dir=f.distractor_dir, max_pairs=f.max_pairs, fov=f.fov,
                                 random_orientation=f.random_orientation, fov_test_seed=f.fov_test_seed, **options)
    paths = write_descriptors(f.output, result)
    first = result["query"] if "query" in result else result["satellite"]
    what = "queries" if "query" in result else "pairs"
    print(f"{first.shape[0]} {what}, {first.shape[1]}-d descriptors ({len(result['skipped'])} skipped):")
    for p in paths.values():
        print("  " + p)
    return 0


def main(argv=None) -> None:
    """Entry point of ``cvmnet-extract`` / ``python -m cvmnet_tf.extract``."""
    import_tensorflow_quietly()
    define_flags()
    run(_main, argv, usage=__doc__)
