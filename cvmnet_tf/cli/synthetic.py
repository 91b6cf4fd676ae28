"""``cvmnet-synthetic``: write a synthetic dataset (in a real distribution's layout) or map.

    cvmnet-synthetic --output_dir data/synthetic_cvusa --layout cvusa --num_train 512 --num_val 128
    cvmnet-synthetic --output_dir data/synthetic_map --map --num_panoramas 32

Layouts: the datasets of the registry with a synthetic writer. Output depends only on the
seed (byte-identical for any number of ``--workers``). ``--output_dir`` must be missing,
empty or a folder this command wrote before (a user's dataset is never overwritten).
"""
from __future__ import annotations

import json
import sys

from cvmnet_tf.cli.common import UsageError, parse_size, run

__all__ = ["define_flags", "main"]


def define_flags(fv=None) -> None:
    from absl import flags

    from cvmnet_tf.data.synthetic import synthetic_layouts

    fv = fv or flags.FLAGS
    flags.DEFINE_string("output_dir", None, "Output folder.", flag_values=fv)
    flags.DEFINE_enum("layout", "cvusa", list(synthetic_layouts()), "Dataset layout to write.", flag_values=fv)
    flags.DEFINE_integer("num_train", 512, "Training pairs (University-1652: buildings).", flag_values=fv)
    flags.DEFINE_integer("num_val", 128, "Validation pairs (University-1652: test buildings).", flag_values=fv)
    flags.DEFINE_integer("num_test", None, "CVACT: extra ACT_test pairs; Vo & Hays: Denver test pairs.",
                         flag_values=fv)
    flags.DEFINE_integer("seed", 0, "Seed of the world.", flag_values=fv)
    flags.DEFINE_string("satellite_size", None, "Satellite tile HxW in pixels, square (default: the layout's small "
                        "size).", flag_values=fv)
    flags.DEFINE_string("ground_size", None, "Ground image HxW in pixels (default: the layout's small size).",
                        flag_values=fv)
    flags.DEFINE_boolean("native_sizes", False, "Real sizes (CVUSA 750x750 / 224x1232, CVACT 1200 / 832x1664).",
                         flag_values=fv)
    flags.DEFINE_integer("workers", None, "Processes rendering pairs (default: all cores from 200 pairs on; the "
                         "files are identical for any number).", flag_values=fv)
    flags.DEFINE_boolean("map", False, "Write a localization map instead.", flag_values=fv)
    flags.DEFINE_integer("num_panoramas", 16, "With --map: query panoramas.", flag_values=fv)
    flags.mark_flags_as_required(["output_dir"], flag_values=fv)


def _main() -> int:
    from absl import flags

    from cvmnet_tf.data.synthetic import write_dataset, write_map
    from cvmnet_tf.data.synthetic.files import check_output_dir

    f = flags.FLAGS
    if f.workers is not None and f.workers < 1:
        raise UsageError("must be >= 1", "workers", f.workers)
    try:
        check_output_dir(f.output_dir, "--output_dir")
    except FileExistsError as exc:
        raise UsageError(str(exc)) from None
    sat = parse_size(f.satellite_size, "satellite_size") if f.satellite_size else None
    grd = parse_size(f.ground_size, "ground_size") if f.ground_size else None
    if f.map:
        info = write_map(f.output_dir, seed=f.seed, num_panoramas=f.num_panoramas, ground_size=grd or (64, 256))
        info.pop("panoramas")
    else:
        info = write_dataset(f.output_dir, f.layout, f.num_train, f.num_val, seed=f.seed, satellite_size=sat,
                             ground_size=grd, num_test=f.num_test, native_sizes=f.native_sizes, workers=f.workers)
    json.dump(info, sys.stdout, indent=1)
    print()
    return 0


def main(argv=None) -> None:
    """Entry point of ``cvmnet-synthetic`` / ``python -m cvmnet_tf.data.synthetic``."""
    define_flags()
    run(_main, argv, usage=__doc__)
