"""The runner of the pair writers: seeds, worker processes and staged atomic writes.

``write_dataset(..., workers=N)`` renders chunks of a region's camera positions in N
processes (each process generates the region's map once and keeps it); images are written
under temporary names by the workers and renamed to their final, sequential names by the
calling process in pair order. Every pair is a function of (seed, layout stream, split,
region, index in the region) only, so the files are byte-identical for any N.

:func:`write_pair_dataset` is the driver every pair layout (CVUSA, CVACT, Vo & Hays) goes
through: argument checks, sizes, the worker pool, the layout's own file writer, and the
``synthetic_meta.json`` record.
"""
from __future__ import annotations

import dataclasses
import os
import time

import numpy as np

from cvmnet_tf.data.synthetic.config import WorldConfig, seed_sequence
from cvmnet_tf.data.synthetic.files import check_count, check_size, claim_output_dir, encode_image, save_json
from cvmnet_tf.data.synthetic.pairs import make_pair, region_world
from cvmnet_tf.data.synthetic.world import WorldStyle

__all__ = ["PairStream", "Runner", "Plan", "PairLayout", "PairJob", "plan_streams", "num_workers", "chunk_size",
           "write_pair_dataset"]


@dataclasses.dataclass(frozen=True)
class PairStream:
    """One sequence of pairs (a split, or a Vo & Hays city) and where its images go.

    files: (attribute of Pair, folder relative to out_dir, extension) per written image.
    """

    out_dir: str
    seed: int
    stream: int
    split: int
    sat: int
    ground_size: tuple
    config: WorldConfig
    files: tuple
    quality: int = 90
    view: str = "panorama"
    horizon_fraction: float = 1 / 3
    north_frac: float = 0.5
    fov_deg: float = 90.0
    style: WorldStyle | None = None


_REGION_CACHE: dict = {}


def _cached_region(st: PairStream, region: int):
    key = (st.seed, st.stream, st.split, region, st.sat, st.config, st.style)
    if key not in _REGION_CACHE:
        _REGION_CACHE.clear()          # one map at a time (maps can be ~300 MB native)
        _REGION_CACHE[key] = region_world(st.seed, st.stream, st.split, region, st.sat,
                                           st.config, st.style)
    return _REGION_CACHE[key]


def _run_chunk(st: PairStream, region: int, lo: int, hi: int):
    """Renders positions [lo, hi) of a region and writes their images under staging
    names ``.<stream>-<split>-<region>-<i>-<n>.tmp-<pid>`` next to their final folder
    (the caller renames them). Returns (positions in the region, [(easting, northing,
    heading_deg, staged paths) per pair])."""
    world, pts = _cached_region(st, region)
    with_labels = any(attr == "ground_labels" for attr, _, _ in st.files)
    for _, folder, _ in st.files:
        os.makedirs(os.path.join(st.out_dir, folder), exist_ok=True)
    out = []
    for i in range(lo, min(hi, len(pts))):
        x, y = pts[i]
        prng = np.random.default_rng(seed_sequence(st.seed, st.stream, st.split, region, i))
        pair = make_pair(world, x, y, prng, st.sat, st.ground_size, st.config, st.view,
                          st.horizon_fraction, st.north_frac, st.fov_deg, with_labels)
        paths = []
        for n, (attr, folder, ext) in enumerate(st.files):
            path = os.path.join(st.out_dir, folder, f".{st.stream}-{st.split}-{region}-{i}-{n}"
                                f"{ext}.tmp-{os.getpid()}")
            with open(path, "wb") as f:
                f.write(encode_image(getattr(pair, attr), ext, st.quality))
            paths.append(path)
        out.append((pair.easting, pair.northing, pair.heading_deg, paths))
    return len(pts), out


def _fork_is_safe() -> bool:
    import sys
    import threading
    return (threading.active_count() == 1
            and not any(m in sys.modules for m in ("tensorflow", "jax", "torch")))


class _Done:
    """A finished 'future' for the in-process path (runs when asked for its result)."""

    def __init__(self, fn, args):
        self._fn, self._args = fn, args

    def result(self):
        return self._fn(*self._args)

    def done(self):
        return False


class Runner:
    """Runs chunks in a process pool (workers > 1) or lazily in this process."""

    def __init__(self, workers: int):
        self.workers = workers
        self.pool = None
        if workers > 1:
            import concurrent.futures
            import multiprocessing
            ctx = multiprocessing.get_context("fork" if _fork_is_safe() else "spawn")
            self.pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=ctx)
        self.pending = []

    def submit(self, *args):
        fut = (self.pool.submit(_run_chunk, *args) if self.pool is not None
               else _Done(_run_chunk, args))
        self.pending.append(fut)
        return fut

    def close(self, ok: bool):
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
        if not ok:        # remove staged images nobody will rename
            for fut in self.pending:
                if fut.done() and not fut.cancelled() and fut.exception() is None:
                    for *_, paths in fut.result()[1]:
                        for p in paths:
                            if os.path.exists(p):
                                os.remove(p)
        _REGION_CACHE.clear()


class Plan:
    """The chunks of one stream: positions of region 0, then region 1, ... (in order),
    re-planned when a region holds fewer positions than pairs_per_region."""

    def __init__(self, runner: Runner, st: PairStream, num: int, chunk: int):
        self.runner, self.st, self.num, self.chunk = runner, st, num, chunk
        self.region, self.lo, self.known, self.queue = 0, 0, {}, []
        self._plan(num)

    def _plan(self, need):
        ppr = self.st.config.pairs_per_region
        while need > 0:
            if self.region > 10 * self.num + 10:
                raise RuntimeError("write_dataset: could not place camera positions; lower "
                                   "min_spacing_m or tile_extent_m")
            here = self.known.get(self.region, ppr)
            if self.lo >= here:
                self.region, self.lo = self.region + 1, 0
                continue
            take = min(self.chunk, here - self.lo, need)
            self.queue.append((self.region, self.lo, self.lo + take,
                               self.runner.submit(self.st, self.region, self.lo,
                                                  self.lo + take)))
            self.lo += take
            need -= take

    def results(self):
        """Yields (easting, northing, heading_deg, staged paths) in pair order."""
        while self.queue:
            region, lo, hi, fut = self.queue.pop(0)
            n_pts, metas = fut.result()
            self.known[region] = n_pts
            yield from metas
            if len(metas) < hi - lo:
                self._plan(hi - lo - len(metas))


def num_workers(workers, total):
    if workers is None:
        # a pool costs ~0.1-1 s to start: only worth it for a few hundred pairs
        return 1 if total < 200 else max(1, os.cpu_count() or 1)
    if not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"write_dataset: workers={workers!r} must be an int >= 1 or None")
    return int(workers)


def chunk_size(config: WorldConfig, counts, workers: int) -> int:
    ppr = config.pairs_per_region
    if workers <= 1:
        return ppr
    regions = sum(-(-n // ppr) for n in counts if n)
    splits = max(1, -(-2 * workers // max(regions, 1)))
    return max(4, -(-ppr // splits))


def plan_streams(runner, streams):
    """[(PairStream, num)] -> list of _Plan, all submitted before any is consumed."""
    if not streams:
        return []
    chunk = chunk_size(streams[0][0].config, [n for _, n in streams], runner.workers)
    return [Plan(runner, st, n, chunk) for st, n in streams]


@dataclasses.dataclass(frozen=True)
class PairLayout:
    """A pair layout: its name, seed stream, default sizes ((satellite, ground) (H, W)) at
    the real distribution's size (``native``) and small for CPU (``small``), and whether its
    ground images are square."""

    name: str
    stream: int
    native: tuple
    small: tuple
    square_ground: bool = False


@dataclasses.dataclass(frozen=True)
class PairJob:
    """What a layout's file writer gets: the checked counts, sizes and options."""

    out_dir: str
    num_train: int
    num_val: int
    num_test: int | None
    seed: int
    satellite_size: tuple
    ground_size: tuple
    config: WorldConfig
    jpeg_quality: int
    write_annotations: bool


def write_pair_dataset(layout: PairLayout, write_files, out_dir: str, num_train: int, num_val: int, *,
                       seed: int = 0, satellite_size=None, ground_size=None, num_test: int | None = None,
                       native_sizes: bool = False, config: WorldConfig | None = None, jpeg_quality: int = 90,
                       write_annotations: bool = False, workers: int | None = None, check=None) -> dict:
    """Check the arguments (``check(job)``: the layout's own checks, before anything is
    written), run ``write_files(runner, job) -> {split: count}`` with a pool of
    ``workers`` processes and record ``synthetic_meta.json``. Arguments as
    :func:`cvmnet_tf.data.synthetic.write_dataset`; returns its info dict."""
    who = "write_dataset"
    num_train = check_count(who, "num_train", num_train)
    num_val = check_count(who, "num_val", num_val)
    if num_test is not None:
        num_test = check_count(who, "num_test", num_test)
    if native_sizes and (satellite_size is not None or ground_size is not None):
        raise ValueError("write_dataset: pass either native_sizes=True or explicit sizes")
    sizes = layout.native if native_sizes else layout.small
    sat = check_size(who, "satellite_size", tuple(satellite_size or sizes[0]), square=True)
    grd = check_size(who, "ground_size", tuple(ground_size or sizes[1]), square=layout.square_ground)
    job = PairJob(out_dir, num_train, num_val, num_test, seed, sat, grd, config or WorldConfig(),
                  jpeg_quality, write_annotations)
    if check is not None:
        check(job)
    n_workers = num_workers(workers, num_train + num_val + (num_test or 0))
    t0 = time.perf_counter()
    claim_output_dir(out_dir)
    runner, ok = Runner(n_workers), False
    try:
        counts = write_files(runner, job)
        ok = True
    finally:
        runner.close(ok)
    secs = time.perf_counter() - t0
    total = sum(counts.values())
    info = {"layout": layout.name, "out_dir": os.path.abspath(out_dir), "counts": counts,
            "seed": seed, "satellite_size": list(sat), "ground_size": list(grd),
            "native_sizes": bool(native_sizes), "config": dataclasses.asdict(job.config),
            "workers": n_workers, "seconds": round(secs, 3),
            "pairs_per_second": round(total / max(secs, 1e-9), 1),
            "generator": "cvmnet_tf.data.synthetic"}
    save_json(os.path.join(out_dir, "synthetic_meta.json"), info)
    return info
