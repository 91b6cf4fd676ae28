"""Input pipeline cost against the released loader itself, at the paper's resolution. Not a test:

    pip install -e .[bench]          # OpenCV (the released loader's) and psutil
    git clone https://github.com/david-husx/crossview_localisation /tmp/released
    nice -n 5 python benchmarks/input_pipeline.py --released_repo /tmp/released

``--released_repo``: a clone (work tree) of github.com/david-husx/crossview_localisation, or
its git directory (``.../.git`` or a bare repository: ``src/CVM-Net/input_data.py`` is taken
out of HEAD with ``git archive`` into a temporary folder). The released file is read at run
time, never copied into this repository; it runs unchanged (Python 3 runs it as it is; the
only shim, applied at run time, is its class attribute ``InputData.img_root``, pointed at the
benchmark's data).

Writes ``--num-pairs`` (192) synthetic pairs in the CVUSA layout (750x750 satellite JPEG,
1232x224 panorama JPEG, ``splits/train-19zl.csv`` and the ``val-19zl.csv`` the released
constructor also reads) into a temporary folder, restricts the process to ``--cores`` (2)
cores, then measures in one run, interleaved (A B C D A B C D ...) after a warm-up pass of
each, for ``--repeats`` rounds:

1. released: ``InputData.next_pair_batch(12)`` until it returns None (one epoch; it stops
   ``batch + 2`` pairs before the end, 180 of 192 pairs), OpenCV decode / crop / INTER_AREA
   resize / warpAffine rotation / float32 BGR minus means, one pair at a time;
2. ours, uint8: ``make_pair_dataset(training=True, output_dtype="uint8")``, the training
   pipeline of a model built with ``input_dtype="uint8"`` (the default): same crop and
   rotation draws, RGB uint8 batches; the BGR swap, cast and mean subtraction run on the
   accelerator as the model's first layer (not counted here: they are the device's work);
3. ours, float32: the same pipeline delivering the float32 network input (the pipeline
   before device-side preprocessing, and today's for ``input_dtype="float32"`` models);
4. the floor: tf.data reading and decoding the same JPEGs only (same parallelism).

Reported: pairs/s (best and median pass) and CPU ms per pair (user + system time of this
process, all threads; other processes' load barely changes it) of each, and the targets
(ours uint8 <= 0.7x the released loader's CPU ms per pair and >= 2x its pairs/s on 2 cores),
with the CPU model, flags and load average.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import random
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

RELEASED_FILE = "src/CVM-Net/input_data.py"
RELEASED_URL = "https://github.com/david-husx/crossview_localisation"


def write_pairs(root: str, n: int, seed: int = 0) -> None:
    """n CVUSA-layout pairs with textured content (smooth pattern + noise), JPEG q=90, and
    the train / val split files (the released constructor reads both)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(root, "bingmap", "19"), exist_ok=True)
    os.makedirs(os.path.join(root, "streetview", "panos"), exist_ok=True)
    os.makedirs(os.path.join(root, "splits"), exist_ok=True)
    ys, xs = np.mgrid[0:750, 0:750]
    yg, xg = np.mgrid[0:224, 0:1232]
    lines = []
    for i in range(n):
        f = rng.uniform(5, 40, 3)
        sat = np.stack([128 + 90 * np.sin(xs / f[c] + ys / f[(c + 1) % 3] + i)
                        for c in range(3)], -1) + rng.normal(0, 12, (750, 750, 3))
        grd = np.stack([128 + 90 * np.sin(xg / f[c] + yg / f[(c + 2) % 3] + i)
                        for c in range(3)], -1) + rng.normal(0, 12, (224, 1232, 3))
        pid = f"{i:07d}"
        Image.fromarray(np.clip(sat, 0, 255).astype(np.uint8)).save(
            os.path.join(root, "bingmap", "19", pid + ".jpg"), quality=90)
        Image.fromarray(np.clip(grd, 0, 255).astype(np.uint8)).save(
            os.path.join(root, "streetview", "panos", pid + ".jpg"), quality=90)
        lines.append(f"bingmap/19/{pid}.jpg,streetview/panos/{pid}.jpg,annotations/{pid}.png")
    for name, rows in (("train-19zl.csv", lines), ("val-19zl.csv", lines[:12])):
        with open(os.path.join(root, "splits", name), "w") as fh:
            fh.write("\n".join(rows) + "\n")


def released_source(repo: str, tmp: str) -> str:
    """Path of the released ``input_data.py``: in the work tree ``repo``, or taken out of the
    git directory ``repo`` (HEAD) into ``tmp`` with ``git archive``. SystemExit with one line
    when neither works."""
    path = os.path.join(repo, RELEASED_FILE)
    if os.path.isfile(path):
        return path
    out = os.path.join(tmp, "released")
    os.makedirs(out, exist_ok=True)
    try:
        archive = subprocess.run(["git", f"--git-dir={repo}", "archive", "HEAD", RELEASED_FILE],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", out], input=archive, check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        raise SystemExit(f"--released_repo={repo!r}: neither a clone holding {RELEASED_FILE} nor its git "
                         f"directory (clone {RELEASED_URL})") from None
    return os.path.join(out, RELEASED_FILE)


def load_released_loader(source: str, data_root: str):
    """The released ``InputData`` class from ``source``, its ``img_root`` pointed at
    ``data_root`` (the only run-time shim)."""
    spec = importlib.util.spec_from_file_location("released_input_data", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.InputData.img_root = os.path.join(data_root, "")
    return module.InputData


def released_epoch(loader, batch_size: int) -> int:
    """One epoch of ``loader.next_pair_batch(batch_size)``; the pairs it delivered."""
    done = 0
    while True:
        sat, grd = loader.next_pair_batch(batch_size)
        if sat is None:
            return done
        done += len(sat)


def _cpu_seconds() -> float:
    """CPU time (user + system) of this process so far, all threads."""
    t = os.times()
    return t.user + t.system


def interleaved(fns: dict, repeats: int):
    """A warm-up call of each, then ``repeats`` rounds A B C ... Each function returns the
    pairs it delivered. Returns {name: [(wall s, CPU s, pairs) per pass]}."""
    for fn in fns.values():
        fn()
    out = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            c0, t0 = _cpu_seconds(), time.perf_counter()
            pairs = fn()
            out[name].append((time.perf_counter() - t0, _cpu_seconds() - c0, pairs))
    return out


def restrict_cores(n: int) -> str:
    """Pin this process to ``n`` of its cores (before TensorFlow / OpenCV size their pools)."""
    if not hasattr(os, "sched_setaffinity"):
        return "cores: not restricted (no sched_setaffinity)"
    mine = sorted(os.sched_getaffinity(0))
    if n < len(mine):
        os.sched_setaffinity(0, mine[:n])
    return f"cores used: {len(os.sched_getaffinity(0))} (asked {n})"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--released_repo", required=True,
                    help=f"clone or git directory of {RELEASED_URL} (its {RELEASED_FILE} is run)")
    ap.add_argument("--num-pairs", type=int, default=192)
    ap.add_argument("--batch-size", type=int, default=12)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--data-dir", default=None,
                    help="reuse (or create once) the JPEGs in this folder instead of a temp dir")
    args = ap.parse_args(argv)
    cores = restrict_cores(args.cores)

    try:
        import cv2
    except ImportError:
        raise SystemExit("OpenCV is not installed: pip install -e .[bench] (opencv-python-headless)") from None
    import tensorflow as tf

    from cvmnet_tf.data import ImageSizes, load_cvusa_split, make_pair_dataset
    from machine import describe_cpu

    with tempfile.TemporaryDirectory() as tmp:
        source = released_source(args.released_repo, tmp)
        root = args.data_dir or os.path.join(tmp, "data")
        if not os.path.isfile(os.path.join(root, "splits", "val-19zl.csv")):
            t0 = time.perf_counter()
            write_pairs(root, args.num_pairs)
            print(f"wrote {args.num_pairs} pairs (750x750 + 224x1232 JPEG) in {time.perf_counter() - t0:.1f} s")
        split = load_cvusa_split(root, "train")
        InputData = load_released_loader(source, root)
        random.seed(0)
        loader = InputData()
        bs = args.batch_size

        def ours(output_dtype):
            ds = make_pair_dataset(split, ImageSizes.paper(), training=True, batch_size=bs, seed=0,
                                   output_dtype=output_dtype)

            def run():
                n = 0
                for b in ds:
                    n += int(b["index"].shape[0])
                return n
            return run

        paths = tf.constant(split.satellite_paths), tf.constant(split.ground_paths)

        def decode(i):
            def read(p):
                return tf.io.decode_jpeg(tf.io.read_file(tf.gather(p, i)), channels=3, dct_method="INTEGER_ACCURATE")
            return read(paths[0]), read(paths[1])

        floor_ds = (tf.data.Dataset.range(len(split)).shuffle(len(split), seed=0)
                    .map(decode, num_parallel_calls=tf.data.AUTOTUNE)
                    .batch(bs, drop_remainder=True).prefetch(tf.data.AUTOTUNE))

        def floor():
            n = 0
            for s, _ in floor_ds:
                n += int(s.shape[0])
            return n

        names = {"released": "(1) released next_pair_batch (cv2)",
                 "uint8": "(2) ours, uint8 batches",
                 "float32": "(3) ours, float32 batches",
                 "floor": "(4) tf decode-only floor"}
        runs = interleaved({"released": lambda: released_epoch(loader, bs), "uint8": ours("uint8"),
                            "float32": ours("float32"), "floor": floor}, args.repeats)
        released_file = os.path.relpath(source, tmp) if source.startswith(tmp) else source

    print(describe_cpu())
    print(f"{cores}; OpenCV {cv2.__version__} ({cv2.getNumThreads()} threads), TensorFlow {tf.__version__}; "
          f"released loader: {released_file} of --released_repo")
    print(f"{args.num_pairs} pairs, batch {bs}, {args.repeats} interleaved rounds after a warm-up")
    print(f"{'':38s} {'pairs/s best':>12s} {'median':>8s} {'CPU ms/pair':>12s}")
    rate, cpu = {}, {}
    for k, label in names.items():
        walls = [p / w for w, _, p in runs[k]]
        cpu[k] = float(np.median([1e3 * c / p for _, c, p in runs[k]]))
        rate[k] = (max(walls), float(np.median(walls)))
        print(f"{label:38s} {rate[k][0]:12.1f} {rate[k][1]:8.1f} {cpu[k]:12.2f}")
    r = rate["uint8"][1] / rate["released"][1]
    c = cpu["uint8"] / cpu["released"]
    print(f"ours uint8 / released: {r:.2f}x pairs/s (median; target >= 2: {'met' if r >= 2 else 'NOT met'}), "
          f"{c:.2f}x CPU ms per pair (target <= 0.7: {'met' if c <= 0.7 else 'NOT met'})")
    print(f"ours uint8 / decode-only floor: {cpu['uint8'] / cpu['floor']:.2f}x CPU ms per pair; "
          f"float32 / uint8: {cpu['float32'] / cpu['uint8']:.2f}x")
    print("(the released loader runs one Python thread, with OpenCV's own threads inside resize / warpAffine)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
