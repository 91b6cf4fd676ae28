"""Speed of the synthetic world writer: pairs per second per layout, for 1 worker and for
all workers, at the default small sizes and at the native sizes.

Usage:
  python benchmarks/synthetic_speed.py                       # all layouts, small + native
  python benchmarks/synthetic_speed.py --layouts cvusa --num 600 --no-native
  python benchmarks/synthetic_speed.py --workers 1,2,4

Each run writes a fresh dataset (num_train pairs, no val/test) into a temporary folder
and deletes it. Pairs/s = pairs / wall seconds of write_dataset (everything: maps,
rendering, JPEG encoding, file writes; pool start-up included). The machine's load
average (os.getloadavg) is printed with every row: on a shared machine the figures
are only comparable at similar load.
"""
import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from cvmnet_tf.data.synthetic import write_dataset  # noqa: E402
from cvmnet_tf.data.synthetic import LAYOUTS, NATIVE_SIZES, SMALL_SIZES  # noqa: E402


def _workers(text):
    out = []
    for part in text.split(","):
        part = part.strip()
        if part == "all":
            out.append(os.cpu_count() or 1)
        elif part.isdigit() and int(part) >= 1:
            out.append(int(part))
        else:
            raise argparse.ArgumentTypeError(f"--workers: {part!r} must be a positive int "
                                             f"or 'all'")
    return sorted(set(out))


def run_one(layout, num, native, workers, seed=0):
    """-> (pairs, wall seconds, parent CPU seconds)."""
    out = tempfile.mkdtemp(prefix="synthetic_speed_")
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        info = write_dataset(out, layout, num_train=num, num_val=0, seed=seed,
                             native_sizes=native, workers=workers)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        return sum(info["counts"].values()), wall, cpu
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layouts", default=",".join(LAYOUTS),
                    help=f"comma-separated subset of {LAYOUTS}")
    ap.add_argument("--num", type=int, default=300, help="pairs per run at the small sizes")
    ap.add_argument("--num-native", type=int, default=48, help="pairs per run, native sizes")
    ap.add_argument("--workers", type=_workers, default=_workers("1,all"),
                    help="comma-separated worker counts ('all' = os.cpu_count())")
    ap.add_argument("--no-native", action="store_true", help="skip the native sizes")
    ap.add_argument("--no-small", action="store_true", help="skip the small sizes")
    args = ap.parse_args(argv)
    layouts = [v.strip() for v in args.layouts.split(",") if v.strip()]
    for v in layouts:
        if v not in LAYOUTS:
            ap.error(f"--layouts: {v!r} is not one of {LAYOUTS}")
    print(f"cpu_count={os.cpu_count()}  load average at start: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'layout':7} {'sizes':7} {'satellite':>10} {'ground':>10} {'workers':>7} "
          f"{'pairs':>5} {'wall s':>7} {'pairs/s':>8} {'load1':>6}")
    for native in ([False] if args.no_native else [False, True]):
        if not native and args.no_small:
            continue
        for layout in layouts:
            sat, grd = (NATIVE_SIZES if native else SMALL_SIZES)[layout]
            for w in args.workers:
                n, wall, _ = run_one(layout, args.num_native if native else args.num, native, w)
                print(f"{layout:7} {'native' if native else 'small':7} "
                      f"{'x'.join(map(str, sat)):>10} {'x'.join(map(str, grd)):>10} {w:7d} "
                      f"{n:5d} {wall:7.2f} {n / wall:8.1f} {os.getloadavg()[0]:6.2f}",
                      flush=True)


if __name__ == "__main__":
    main()
