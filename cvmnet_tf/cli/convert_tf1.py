"""``cvmnet-convert-tf1``: a released TF1 CVM-Net checkpoint as a Keras ``.keras`` model.

    cvmnet-convert-tf1 --tf1_checkpoint Model/CVM-NET-I/9/model.ckpt --model cvm_net_i --output cvm_net_i.keras

Variable names as in the released checkpoints (:mod:`cvmnet_tf.inference.tf1`); Adam slots
and counters are ignored; anything missing, mis-shaped or unknown is listed in one error
and nothing is written. ``--num_clusters`` / ``--descriptor_dim`` default to what the
checkpoint's shapes imply; the image sizes do not change the weights.
"""
from __future__ import annotations

from cvmnet_tf.cli.common import parse_size, run
from cvmnet_tf.utils.startup import import_tensorflow_quietly

__all__ = ["define_flags", "main"]


def define_flags(fv=None) -> None:
    from absl import flags

    from cvmnet_tf.inference.tf1 import SUPPORTED_MODELS

    fv = fv or flags.FLAGS
    flags.DEFINE_string("tf1_checkpoint", None, "Released TF1 checkpoint prefix (e.g. Model/CVM-NET-I/9/model.ckpt) "
                        "or its folder.", flag_values=fv)
    flags.DEFINE_enum("model", None, list(SUPPORTED_MODELS), "Network the checkpoint holds.", flag_values=fv)
    flags.DEFINE_string("output", None, "Output Keras model file (.keras).", flag_values=fv)
    flags.DEFINE_string("satellite_size", "512x512", "Satellite input HxW in pixels.", flag_values=fv)
    flags.DEFINE_string("ground_size", "224x1232", "Ground input HxW in pixels.", flag_values=fv)
    flags.DEFINE_integer("num_clusters", None, "NetVLAD K (default: from the checkpoint).", flag_values=fv)
    flags.DEFINE_integer("descriptor_dim", None, "Descriptor size (default: from the checkpoint).", flag_values=fv)
    flags.DEFINE_boolean("normalize_output", True, "CVM-Net-II: l2-normalise the descriptor (the released code "
                         "does not).", flag_values=fv)
    flags.DEFINE_boolean("allow_unused", False, "Ignore unknown checkpoint variables.", flag_values=fv)
    flags.mark_flags_as_required(["tf1_checkpoint", "model", "output"], flag_values=fv)


def _main() -> int:
    from absl import flags

    from cvmnet_tf.cli.common import UsageError
    from cvmnet_tf.inference.tf1 import convert

    f = flags.FLAGS
    if not f.output.endswith(".keras"):
        raise UsageError("must end in .keras", "output", f.output)
    model = convert(f.tf1_checkpoint, f.model, f.output, satellite_size=parse_size(f.satellite_size, "satellite_size"),
                    ground_size=parse_size(f.ground_size, "ground_size"), num_clusters=f.num_clusters,
                    descriptor_dim=f.descriptor_dim, normalize_output=f.normalize_output, allow_unused=f.allow_unused)
    print(f"wrote {f.output} ({model.name}, {model.count_params():,} parameters)")
    return 0


def main(argv=None) -> None:
    """Entry point of ``cvmnet-convert-tf1`` / ``python -m cvmnet_tf.convert_tf1``."""
    import_tensorflow_quietly()
    define_flags()
    run(_main, argv, usage=__doc__)
