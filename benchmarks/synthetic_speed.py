"""Speed of the synthetic world writer (pairs per second, wall and CPU time).

Usage: python benchmarks/synthetic_speed.py [--layout cvusa] [--num 300] [--native]
Writes into a temporary folder and deletes it afterwards.
"""
import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from cvmnet_tf.data.synthetic import write_dataset  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layout", default="cvusa", choices=("cvusa", "cvact", "vohays"))
    ap.add_argument("--num", type=int, default=300, help="training pairs to write")
    ap.add_argument("--native", action="store_true", help="real native image sizes")
    args = ap.parse_args()
    out = tempfile.mkdtemp(prefix="synthetic_speed_")
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        info = write_dataset(out, args.layout, num_train=args.num, num_val=0,
                             native_sizes=args.native)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        n = sum(info["counts"].values())
        print(f"{args.layout} sat {info['satellite_size']} ground {info['ground_size']}: "
              f"{n} pairs in {wall:.2f} s wall ({n / wall:.1f} pairs/s), "
              f"{cpu:.2f} s CPU ({n / cpu:.1f} pairs/s per core)")
    finally:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
