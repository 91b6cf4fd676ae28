"""Input pipeline throughput (pairs/s) at the paper's resolution. Not a test; run on demand:

    python benchmarks/input_pipeline.py --num-pairs 96

Writes N synthetic pairs in the CVUSA layout (750x750 satellite JPEG, 1232x224 panorama
JPEG) into a temporary folder, then measures in one run:

1. the tf.data training pipeline (``make_pair_dataset(training=True)``: read, decode,
   random crop, area resize to 512, rotation, BGR/mean; batch 12);
2. a sequential loop like the released ``input_data.py`` (one pair at a time; PIL decode,
   numpy crop, PIL BOX (= area) resize, numpy rotation and mean subtraction);
3. the floor: tf.data reading and decoding the same JPEGs only (same parallelism).

and prints the ratios (targets: 1 >= 2x 2, and 1 within 1.5x of 3). Timings on a shared
machine are noisy; each figure is the best of ``--repeats`` passes after a warm-up pass.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MEAN_BGR = np.array([103.939, 116.779, 123.6], np.float32)


def write_pairs(root: str, n: int, seed: int = 0) -> None:
    """n CVUSA-layout pairs with textured content (smooth pattern + noise), JPEG q=90."""
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
    with open(os.path.join(root, "splits", "train-19zl.csv"), "w") as fh:
        fh.write("\n".join(lines) + "\n")


def sequential_epoch(split, batch_size: int, rng) -> int:
    """The released loop's work, one pair at a time (PIL stands in for cv2)."""
    from PIL import Image

    order = rng.permutation(len(split))
    done = 0
    for b in range(len(order) // batch_size):
        batch_sat = np.zeros([batch_size, 512, 512, 3], np.float32)
        batch_grd = np.zeros([batch_size, 224, 1232, 3], np.float32)
        for j, i in enumerate(order[b * batch_size:(b + 1) * batch_size]):
            img = Image.open(split.satellite_paths[i]).convert("RGB")
            s = int(rng.integers(1, 749))
            if s > 512:
                start = int((750 - s) / 2)
                img = img.crop((start, start, start + s, start + s))
            img = np.asarray(img.resize((512, 512), Image.BOX))[:, :, ::-1]
            img = np.rot90(img, int(rng.integers(0, 5)))
            batch_sat[j] = img.astype(np.float32) - MEAN_BGR
            grd = np.asarray(Image.open(split.ground_paths[i]).convert("RGB"))[:, :, ::-1]
            if grd.shape[:2] != (224, 1232):
                continue
            batch_grd[j] = grd.astype(np.float32) - MEAN_BGR
            done += 1
    return done


def timed(fn, repeats: int) -> float:
    fn()  # warm-up (tracing, file cache)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--num-pairs", type=int, default=96)
    ap.add_argument("--batch-size", type=int, default=12)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--workdir", default=None, help="folder for the JPEGs (default: a temp dir)")
    args = ap.parse_args(argv)

    import tensorflow as tf

    from cvmnet_tf.data import ImageSizes, load_cvusa_split, make_pair_dataset

    with tempfile.TemporaryDirectory(dir=args.workdir) as root:
        t0 = time.perf_counter()
        write_pairs(root, args.num_pairs)
        print(f"wrote {args.num_pairs} pairs (750x750 + 224x1232 JPEG) in "
              f"{time.perf_counter() - t0:.1f} s to {root}")
        split = load_cvusa_split(root, "train")
        n_batches = len(split) // args.batch_size
        pairs = n_batches * args.batch_size

        ds = make_pair_dataset(split, ImageSizes.paper(), training=True,
                               batch_size=args.batch_size, seed=0)

        def run_pipeline():
            for _ in ds:
                pass

        paths = tf.constant(split.satellite_paths), tf.constant(split.ground_paths)

        def decode(i):
            read = lambda p: tf.io.decode_jpeg(  # noqa: E731
                tf.io.read_file(tf.gather(p, i)), channels=3, dct_method="INTEGER_ACCURATE")
            return read(paths[0]), read(paths[1])

        floor = (tf.data.Dataset.range(len(split))
                 .shuffle(len(split), seed=0)
                 .map(decode, num_parallel_calls=tf.data.AUTOTUNE)
                 .batch(args.batch_size, drop_remainder=True)
                 .prefetch(tf.data.AUTOTUNE))

        def run_floor():
            for _ in floor:
                pass

        rng = np.random.default_rng(0)
        t_pipe = timed(run_pipeline, args.repeats)
        t_seq = timed(lambda: sequential_epoch(split, args.batch_size, rng), args.repeats)
        t_floor = timed(run_floor, args.repeats)

    r_pipe, r_seq, r_floor = pairs / t_pipe, pairs / t_seq, pairs / t_floor
    print(f"cores visible: {os.cpu_count()}, pairs per pass: {pairs}, batch {args.batch_size}")
    print(f"(1) tf.data training pipeline : {r_pipe:8.1f} pairs/s")
    print(f"(2) sequential released-style : {r_seq:8.1f} pairs/s")
    print(f"(3) tf decode-only floor      : {r_floor:8.1f} pairs/s")
    print(f"pipeline / sequential = {r_pipe / r_seq:.2f}x (target >= 2)")
    print(f"floor / pipeline      = {r_floor / r_pipe:.2f}x (target <= 1.5)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
