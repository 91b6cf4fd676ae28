"""``cvmnet-export``: a trained model as a self-contained TensorFlow SavedModel for serving.

    cvmnet-export --checkpoint runs/demo/Model/cvm_net_i/12 --output export/cvm_net_i [--dataset cvusa]

Raw uint8 RGB images of any size in, descriptors out; the evaluation preprocessing of the
dataset's ground rule is inside the graph (see :mod:`cvmnet_tf.inference.serving`).
"""
from __future__ import annotations

import os

from cvmnet_tf.cli.common import UsageError, run
from cvmnet_tf.utils.startup import import_tensorflow_quietly

__all__ = ["define_flags", "main"]


def define_flags(fv=None) -> None:
    from absl import flags

    from cvmnet_tf.data.registry import DATASET_NAMES

    fv = fv or flags.FLAGS
    flags.DEFINE_string("checkpoint", None, "Checkpoint folder <output_dir>/Model/<model>/<epoch> or a .keras file.",
                        flag_values=fv)
    flags.DEFINE_string("output", None, "SavedModel folder to write (an earlier export there is replaced "
                        "atomically; any other existing folder is refused).",
                        flag_values=fv)
    flags.DEFINE_enum("dataset", None, list(DATASET_NAMES), "Ground preprocessing to build in (default: the "
                      "checkpoint's training dataset, else cvusa).", flag_values=fv)
    flags.mark_flags_as_required(["checkpoint", "output"], flag_values=fv)


def _main() -> int:
    from absl import flags

    from cvmnet_tf.inference.serving import check_export_output, export_saved_model

    f = flags.FLAGS
    try:
        check_export_output(f.output)
    except FileExistsError as exc:
        raise UsageError(str(exc)) from None
    if not os.path.exists(f.checkpoint):
        raise UsageError("does not exist", "checkpoint", f.checkpoint)
    info = export_saved_model(f.checkpoint, f.output, f.dataset)
    print(f"wrote SavedModel {f.output}: {info['model']}, satellite {info['satellite_size']}, "
          f"ground {info['ground_size']}, dataset {info['dataset']}, "
          f"{info['descriptor_dim']}-d descriptors; signatures 'ground' and 'satellite'")
    return 0


def main(argv=None) -> None:
    """Entry point of ``cvmnet-export`` / ``python -m cvmnet_tf.export``."""
    import_tensorflow_quietly()
    define_flags()
    run(_main, argv, usage=__doc__)
