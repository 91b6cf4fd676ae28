"""``cvmnet-reproduce``: the published CVUSA numbers from the released CVM-Net checkpoints.

    cvmnet-reproduce --released_model DIR --data_dir data/CVUSA [--model cvm_net_i|cvm_net_ii] \\
        [--output_dir runs/reproduce]

``--released_model``: the unpacked archive the released README links (Google Drive), or one
``model.ckpt`` prefix in it; the checkpoint is converted, the descriptors of CVUSA's
validation split (8,884 pairs) are extracted at the released sizes (512x512 / 224x1232),
recall@1/5/10/1% is evaluated and printed beside the paper's 91.4 % (CVM-Net-I) / 87.2 %
(CVM-Net-II) (:mod:`cvmnet_tf.inference.reproduce`).
"""
from __future__ import annotations

import os

from cvmnet_tf.cli.common import UsageError, parse_size_pair, run

__all__ = ["define_flags", "main"]


def define_flags(fv=None) -> None:
    from absl import flags

    fv = fv or flags.FLAGS
    flags.DEFINE_string("released_model", None, "Released TF1 model: the unpacked archive (searched for model.ckpt "
                        "files; init/ skipped) or a model.ckpt prefix.", flag_values=fv)
    flags.DEFINE_string("data_dir", None, "CVUSA root (splits/val-19zl.csv, bingmap/19, streetview/panos).",
                        flag_values=fv)
    flags.DEFINE_enum("model", None, ["cvm_net_i", "cvm_net_ii"], "Network to evaluate (default: the one the "
                      "archive holds; required when it holds both).", flag_values=fv)
    flags.DEFINE_string("output_dir", "runs/reproduce", "Folder for the converted model, descriptors, metrics and "
                        "the comparison table.", flag_values=fv)
    flags.DEFINE_string("image_size", "paper", "CVUSA input sizes: 'paper' (released 512x512 / 224x1232) or "
                        "HxW,HxW (only for quick checks: the released weights expect the paper's).", flag_values=fv)
    flags.DEFINE_string("split", "val", "CVUSA split (val: the released val-19zl.csv).", flag_values=fv)
    flags.DEFINE_integer("batch_size", 16, "Images per forward pass.", flag_values=fv)
    flags.DEFINE_integer("max_pairs", 0, "Only the first N pairs (0: all; the paper uses all 8,884).",
                         flag_values=fv)
    flags.DEFINE_boolean("overwrite", False, "Replace files of an earlier run in --output_dir.", flag_values=fv)
    flags.mark_flags_as_required(["released_model", "data_dir"], flag_values=fv)


def _main() -> int:
    from absl import flags

    from cvmnet_tf.inference.reproduce import reproduce_released

    f = flags.FLAGS
    parse_size_pair(f.image_size, "image_size", "cvusa")
    if not os.path.exists(f.released_model) and not os.path.exists(f.released_model + ".index"):
        raise UsageError("does not exist", "released_model", f.released_model)
    if not os.path.isdir(f.data_dir):
        raise UsageError("no such folder (see data/README.md)", "data_dir", f.data_dir)
    if f.batch_size < 1:
        raise UsageError("must be >= 1", "batch_size", f.batch_size)
    if f.max_pairs < 0:
        raise UsageError("must be >= 0", "max_pairs", f.max_pairs)
    out = reproduce_released(f.released_model, f.data_dir, f.output_dir, model=f.model, image_size=f.image_size,
                             split=f.split, batch_size=f.batch_size, max_pairs=f.max_pairs, overwrite=f.overwrite)
    print(f"checkpoint {out['checkpoint']} ({out['model']})")
    print(out["table"])
    for p in out["files"].values():
        if os.path.exists(p):
            print("  " + p)
    return 0


def main(argv=None) -> None:
    """Entry point of ``cvmnet-reproduce`` / ``python -m cvmnet_tf.reproduce``."""
    define_flags()
    run(_main, argv, usage=__doc__)
