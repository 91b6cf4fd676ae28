"""Command line: write a synthetic dataset or map.

  python -m cvmnet_tf.data.synthetic --out data/synthetic_cvusa --layout cvusa \
      --num-train 512 --num-val 128
  python -m cvmnet_tf.data.synthetic --out data/synthetic_map --map --num-panoramas 32
"""
import argparse
import json
import sys

from cvmnet_tf.data.synthetic import ALL_LAYOUTS, write_dataset, write_map


def _size(text):
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r} must look like HxW, e.g. 64x256")
    return (h, w)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m cvmnet_tf.data.synthetic",
                                 description="Write a synthetic cross-view dataset or map.")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--layout", default="cvusa", choices=ALL_LAYOUTS)
    ap.add_argument("--num-train", type=int, default=512)
    ap.add_argument("--num-val", type=int, default=128)
    ap.add_argument("--num-test", type=int, default=None,
                    help="CVACT: extra ACT_test pairs; Vo & Hays: Denver test pairs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--satellite-size", type=_size, default=None, help="SxS, e.g. 256x256")
    ap.add_argument("--ground-size", type=_size, default=None, help="HxW, e.g. 64x256")
    ap.add_argument("--native-sizes", action="store_true",
                    help="real sizes (CVUSA 750x750 / 224x1232, CVACT 1200 / 832x1664)")
    ap.add_argument("--workers", type=int, default=None,
                    help="processes rendering pairs (default: all cores from 200 pairs on; "
                         "the files are identical for any number)")
    ap.add_argument("--map", action="store_true", help="write a localization map instead")
    ap.add_argument("--num-panoramas", type=int, default=16, help="with --map")
    args = ap.parse_args(argv)
    if args.workers is not None and args.workers < 1:
        ap.error(f"--workers={args.workers} must be >= 1")
    if args.map:
        info = write_map(args.out, seed=args.seed, num_panoramas=args.num_panoramas,
                         ground_size=args.ground_size or (64, 256))
        info.pop("panoramas")
    else:
        info = write_dataset(args.out, args.layout, args.num_train, args.num_val,
                             seed=args.seed, satellite_size=args.satellite_size,
                             ground_size=args.ground_size, num_test=args.num_test,
                             native_sizes=args.native_sizes, workers=args.workers)
    json.dump(info, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
