"""Benchmark: recall@1/5/10/1% on CVACT_test-sized random descriptors (run on demand).

  python benchmarks/retrieval_recall.py               # 92,802 x 4,096 (minutes)
  python benchmarks/retrieval_recall.py --num 5000    # quick
  python benchmarks/retrieval_recall.py --directions both   # + satellite -> ground
  python benchmarks/retrieval_recall.py --num 5000 --device tf    # + (d) the scan on TensorFlow

Times and peak extra memory (RSS above the descriptors, sampled every 20 ms) of
  (a) the raw similarity matrix product alone, in the same blocks (the floor),
  (b) faiss-cpu exact inner-product search (IndexFlatIP, top-K with K the
      top-1% cut-off), if ``faiss`` is installed,
  (c) cvmnet_tf.evaluation.evaluate_retrieval,
and the ratios (c)/(a) and (c)/(b); with ``--device tf|jax|auto``, (d) the same scan on
that framework's device (its GPU when it has one, else its CPU:
:func:`cvmnet_tf.evaluation.metrics.benchmark_retrieval` is the GPU benchmark's timing),
with its recalls checked against (c). Targets: (c) within 1.3x of (a), faster than
(b), under 2 GiB extra. Figures on a shared machine are noisy.

``--directions both`` evaluates ground -> satellite AND satellite -> ground, as
``python -m cvmnet_tf.evaluate`` reports them: (c) derives both from the same blocked
similarity matrix (row counts and column counts of each block, one matrix product),
while the faiss route (b) needs a second exact search with the roles swapped (index
the ground descriptors, query with the satellite ones). The floor (a) stays one matrix
product. Each single-direction faiss search itself runs the same OpenBLAS sgemm as
numpy, so in one direction (b) and (c) both sit at the floor; the GFLOP/s of the floor
is printed to show how close that is to the machine's peak.
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from cvmnet_tf.evaluation import metrics  # noqa: E402


def _rss_bytes() -> int:
    try:
        import psutil

        return psutil.Process().memory_info().rss
    except ImportError:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """Peak RSS above the level at entry, sampled in a background thread."""

    def __init__(self, interval=0.02):
        self.interval = interval

    def __enter__(self):
        self.base = _rss_bytes()
        self.peak = self.base
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        self.t0 = time.perf_counter()
        self.c0 = time.process_time()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes())
            self._stop.wait(self.interval)

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0
        self.cpu_seconds = time.process_time() - self.c0
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, _rss_bytes())
        self.extra = self.peak - self.base


def make_descriptors(num, dim, seed=0, chunk=8192):
    """Unit float32 (num, dim) queries and a noisy matching database."""
    rng = np.random.default_rng(seed)
    q = np.empty((num, dim), np.float32)
    d = np.empty((num, dim), np.float32)
    for s in range(0, num, chunk):
        a = rng.standard_normal((min(chunk, num - s), dim), dtype=np.float32)
        # noise sigma = sqrt(dim) / 3: true-pair cosine ~ 3 / sqrt(dim), about 3 standard deviations of a
        # random pair's cosine, so recall@1 is low and recall@1% is in between (not a trivial 100 %).
        b = a + (np.sqrt(dim) / 3) * rng.standard_normal(a.shape, dtype=np.float32)
        q[s:s + len(a)] = a / np.linalg.norm(a, axis=1, keepdims=True)
        d[s:s + len(a)] = b / np.linalg.norm(b, axis=1, keepdims=True)
    return q, d


def floor_matmul(q, d, block_size):
    sim = np.empty((block_size, d.shape[0]), np.float32)
    for s in range(0, q.shape[0], block_size):
        e = min(s + block_size, q.shape[0])
        np.matmul(q[s:e], d.T, out=sim[:e - s])


def faiss_recall(q, d, k_max, ks, prefix=""):
    """Recall@K of queries q against database d (query i matches row i) by faiss' exact
    inner-product top-k_max search."""
    import faiss

    index = faiss.IndexFlatIP(d.shape[1])
    index.add(d)
    _, idx = index.search(q, k_max)
    del index
    pos = np.where(idx == np.arange(len(q))[:, None], np.arange(k_max)[None, :], k_max).min(axis=1)
    return {f"{prefix}recall@{k}": float(np.mean(pos < k)) for k in ks}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num", type=int, default=92802, help="queries = database rows (CVACT_test: 92,802)")
    p.add_argument("--dim", type=int, default=4096, help="descriptor dimension")
    p.add_argument("--block_size", type=int, default=None, help="query rows per block (default: ~128 MiB)")
    p.add_argument("--skip_faiss", action="store_true")
    p.add_argument("--directions", choices=("ground_to_satellite", "both"), default="ground_to_satellite",
                   help="both: also satellite -> ground (one pass for ours, a second search for faiss)")
    p.add_argument("--device", choices=metrics.RETRIEVAL_DEVICES, default="cpu",
                   help="also (d): the same scan with device=... (tf / jax: that framework's GPU, else its CPU)")
    args = p.parse_args()
    both = args.directions == "both"
    directions = metrics.DIRECTIONS if both else (metrics.GROUND_TO_SATELLITE,)
    s2g = metrics.SATELLITE_TO_GROUND + "/"

    print(f"descriptors: {args.num} x {args.dim} float32 (query and database: "
          f"{2 * args.num * args.dim * 4 / 2**30:.2f} GiB), threads: "
          f"{os.environ.get('OMP_NUM_THREADS', 'default')}, cpus: {os.cpu_count()}")
    q, d = make_descriptors(args.num, args.dim)
    b = metrics.resolve_block_size(args.block_size, args.num, args.num)
    k1 = metrics.top_percent_k(args.num)
    print(f"block_size {b} query rows; top-1% K = {k1}")

    with PeakRSS() as floor:
        floor_matmul(q, d, b)
    gflop = 2.0 * args.num * args.num * args.dim / 1e9
    print(f"(a) blocked matmul floor : {floor.seconds:8.2f} s (cpu {floor.cpu_seconds:8.2f} s)  peak extra "
          f"{floor.extra / 2**20:8.1f} MiB  {gflop / floor.seconds:.1f} GFLOP/s")

    with PeakRSS() as ours:
        res = metrics.evaluate_retrieval(q, d, block_size=b, directions=directions)
    print(f"(c) evaluate_retrieval   : {ours.seconds:8.2f} s (cpu {ours.cpu_seconds:8.2f} s)  peak extra "
          f"{ours.extra / 2**20:8.1f} MiB  ratio to floor {ours.seconds / floor.seconds:.3f} "
          f"(cpu {ours.cpu_seconds / floor.cpu_seconds:.3f})")
    keys = ("recall@1", "recall@5", "recall@10", "recall@1%")
    print("    " + ", ".join(f"{k} {res[k]:.4f}" for k in keys))
    if both:
        print("    " + ", ".join(f"{s2g}{k} {res[s2g + k]:.4f}" for k in keys))

    if args.device != "cpu":
        where = metrics.retrieval_device(args.device, import_frameworks=True)
        with PeakRSS() as dev:
            dres = metrics.evaluate_retrieval(q, d, block_size=b, directions=directions, device=where)
        same = all(dres[k] == res[k] for k in res)
        print(f"(d) evaluate_retrieval device={where}: {dev.seconds:8.2f} s (cpu {dev.cpu_seconds:8.2f} s)  "
              f"{gflop / dev.seconds:.1f} GFLOP/s  " + ("recalls identical to (c)" if same else
                                                       "recalls DIFFER from (c) (near-ties?)"))

    if args.skip_faiss:
        return
    try:
        import faiss  # noqa: F401
    except ImportError:
        print("(b) faiss not installed (pip install faiss-cpu): skipped")
        return
    with PeakRSS() as fa:
        fres = faiss_recall(q, d, k1, (1, 5, 10, k1))
        if both:
            fres.update(faiss_recall(d, q, k1, (1, 5, 10, k1), prefix=s2g))
    searches = "2 searches" if both else "1 search"
    print(f"(b) faiss IndexFlatIP k={k1}, {searches}: {fa.seconds:8.2f} s (cpu {fa.cpu_seconds:8.2f} s)  peak extra "
          f"{fa.extra / 2**20:8.1f} MiB  ours/faiss {ours.seconds / fa.seconds:.3f} "
          f"(cpu {ours.cpu_seconds / fa.cpu_seconds:.3f})")
    print("    " + ", ".join(f"{k} {v:.4f}" for k, v in fres.items()) + f"  (recall@{k1} = recall@1%)")
    mism = [k for k in keys if abs(res[k] - fres[k.replace("1%", str(k1))]) > 1e-12]
    if both:
        mism += [s2g + k for k in keys if abs(res[s2g + k] - fres[s2g + k.replace("1%", str(k1))]) > 1e-12]
    print("    recalls identical to faiss" if not mism else f"    MISMATCH with faiss: {mism}")


if __name__ == "__main__":
    main()
