"""Writers of synthetic datasets in the layouts of the real distributions.

- ``cvusa``: ``bingmap/19/<id>.jpg`` (satellite), ``streetview/panos/<id>.jpg``
  (panorama), ``splits/train-19zl.csv`` / ``splits/val-19zl.csv`` with lines
  ``bingmap/19/<id>.jpg,streetview/panos/<id>.jpg,streetview/annotations/<id>.png``
  (ids: 7 digits, 1-based; annotation images are written only with
  ``write_annotations=True``, as 8-bit class-label PNGs).
- ``cvact``: ``ACT_data.mat`` (scipy.io.savemat, OriCNN struct layout: ``panoIds`` (N,)
  strings, ``utm`` (N, 2) float64 (easting, northing), ``trainSet.trainInd``,
  ``valSet.valInd``, ``valSetAll.valInd``: 1-based (n, 1) float64 column vectors),
  ``streetview/<id>_grdView.jpg`` (full panoramas: the content band -- horizon in the
  middle, +-45 degrees -- is the central half of the rows, sky above, ground below, as
  OriCNN's 832-row images) and ``satview_polish/<id>_satView_polish.jpg``.
  ``valSetAll`` = the ``num_val`` val pairs followed by ``num_test`` further pairs.
- ``vohays``: gt-crossview style. Images under ``<city>/streetview/<id>.jpg`` (square
  ground crops, 90 degree field of view, random heading) and ``<city>/overhead/<id>.jpg``
  (satellite tiles rotated so that the crop's heading points up); list files
  ``train.streetview.txt`` / ``train.overhead.txt`` (8 training cities; the real names)
  and ``test_denver.streetview.txt`` / ``test_denver.overhead.txt`` (the Denver test city;
  the real test list names are not published, this is the first name the
  ``cvmnet_tf.data.vohays`` loader tries), one
  ``<relative path> <label>`` per line, line i of one paired with line i of the other,
  label = the pair's integer id; plus ``train_pairs.txt`` / ``test_pairs.txt`` with
  ``<ground path> <satellite path>``.

Every layout also gets ``synthetic_meta.json`` (generation parameters, sizes, counts);
the real loaders ignore it. Files are written atomically (``.tmp-<pid>`` + os.replace).

Speed: ``write_dataset(..., workers=N)`` renders chunks of a region's camera positions in
N processes (each process generates the region's map once and keeps it); images are
written under temporary names by the workers and renamed to their final, sequential
names by the calling process in pair order. Every pair is a function of
(seed, layout stream, split, region, index in the region) only, so the files are
byte-identical for any N (``tests/test_synthetic.py`` checks 1 vs 2).
"""
from __future__ import annotations

import dataclasses
import io
import json
import os
import time

import numpy as np
from PIL import Image

from cvmnet_tf.data.synthetic import render
from cvmnet_tf.data.synthetic.world import SyntheticMap, WorldStyle, generate_map, sample_locations

LAYOUTS = ("cvusa", "cvact", "vohays")  # pair layouts
ALL_LAYOUTS = LAYOUTS + ("university1652",)
# Native sizes of the real distributions: (satellite (H, W), ground (H, W)).
NATIVE_SIZES = {"cvusa": ((750, 750), (224, 1232)),
                "cvact": ((1200, 1200), (832, 1664)),
                "vohays": ((250, 250), (230, 230))}
# Small defaults (fast on CPU).
SMALL_SIZES = {"cvusa": ((256, 256), (64, 256)),
               "cvact": ((256, 256), (128, 256)),
               "vohays": ((128, 128), (128, 128))}
VOHAYS_TRAIN_CITIES = ("atlanta", "austin", "boston", "chicago", "houston", "miami",
                       "phoenix", "portland")
VOHAYS_TEST_CITY = "denver"
_STREAMS = {"cvusa": 1, "cvact": 2, "vohays": 3, "map": 4}
_SPLIT_STREAM = {"train": 0, "val": 1, "test": 2}


@dataclasses.dataclass(frozen=True)
class WorldConfig:
    """Geometry shared by tiles and panoramas (metres unless noted).

    tile_extent_m: ground side length of one satellite tile.
    region_m: side of one generated region (a fresh map every pairs_per_region pairs).
    metres_per_pixel: map resolution; None -> min(0.6, 1.5 * tile_extent_m / satellite side).
    min_spacing_m: minimum distance between two camera positions of a region.
    camera_height_m, max_distance_m: ground camera geometry.
    pairs_per_region: at most this many pairs per region map.
    ground_strength, satellite_strength: photometric jitter scale (0 = clean render).
    location_tint: strength of a per-location colour cast (soil, season, vegetation)
        that both views of a place share: each RGB channel of the ground surface and of
        the tile is scaled by 1 + location_tint * u, u ~ U(-1, 1) drawn per pair (0 = off).
        It gives a small network a cue it can learn within minutes on a CPU (the
        ``cpu_demo`` training preset uses 0.35), on top of the geometric ones.
    """

    tile_extent_m: float = 100.0
    region_m: float = 480.0
    metres_per_pixel: float | None = None
    min_spacing_m: float = 25.0
    camera_height_m: float = 2.0
    max_distance_m: float = 80.0
    pairs_per_region: int = 150
    ground_strength: float = 1.0
    satellite_strength: float = 1.0
    location_tint: float = 0.0

    def map_resolution(self, satellite_side: int) -> float:
        if self.metres_per_pixel is not None:
            return float(self.metres_per_pixel)
        return min(0.6, 1.5 * self.tile_extent_m / satellite_side)


@dataclasses.dataclass
class Pair:
    """One generated pair. satellite uint8 (S, S, 3); ground uint8 (H, W, 3);
    easting/northing metres of the camera (= tile centre); heading_deg for crops."""

    satellite: np.ndarray
    ground: np.ndarray
    easting: float
    northing: float
    heading_deg: float | None = None
    ground_labels: np.ndarray | None = None


def _seed(*parts):
    return np.random.SeedSequence([int(p) for p in parts])


def _region_origin(stream: int, split: int, region: int):
    """UTM-like origin of a region: regions lie 10 km apart, never overlapping."""
    k = (stream * 4 + split) * 1000 + region
    return 300000.0 + (k % 40) * 10000.0, 4000000.0 + (k // 40) * 10000.0


def _region_world(seed, stream, split, region, s, config: WorldConfig, style):
    """(map, camera positions (n, 2) px) of one region: a function of its arguments only."""
    mpp = config.map_resolution(s)
    side = int(round(config.region_m / mpp))
    world = generate_map((seed, stream, split, region), (side, side), mpp,
                         _region_origin(stream, split, region), style)
    rng = np.random.default_rng(_seed(seed, stream, split, region, 1 << 20))
    # always place pairs_per_region positions, so that the first n pairs do not depend
    # on how many are asked for
    pts = sample_locations(world, config.pairs_per_region, rng,
                           min_spacing_m=config.min_spacing_m,
                           margin_m=config.tile_extent_m * 0.6)
    return world, pts


def iter_pairs(num: int, *, seed: int = 0, stream: int = 1, split: int = 0,
               satellite_size=(256, 256), ground_size=(64, 256), config: WorldConfig = WorldConfig(),
               view: str = "panorama", horizon_fraction: float = 1 / 3,
               north_column_fraction: float = 0.5, fov_deg: float = 90.0,
               style: WorldStyle | None = None, with_labels: bool = False):
    """Yields ``num`` deterministic :class:`Pair` s (regions generated lazily).

    Pairs come region after region: all camera positions of region 0, then of region 1...
    Pair i of region r is a function of (seed, stream, split, r, i) and the arguments only
    (write_dataset produces the same pairs in any number of processes).

    Args:
      num: number of pairs.
      seed, stream, split: seed parts; (seed, stream, split, region, index) fixes a pair.
      satellite_size: (S, S) tile pixels. ground_size: (H, W) ground view pixels.
      config: WorldConfig.
      view: "panorama" (north-aligned 360 degree view) or "crop" (fov_deg wide view at a
        random heading; the tile is then rotated so that the heading points up).
      horizon_fraction, north_column_fraction: panorama geometry (see render.view_angles).
      style: fixed WorldStyle for all regions (None: random per region).
      with_labels: also return the ground view's class labels.
    """
    if view not in ("panorama", "crop"):
        raise ValueError(f"iter_pairs: view={view!r} must be 'panorama' or 'crop'")
    s = render._square(satellite_size, "iter_pairs")
    produced, region = 0, 0
    while produced < num:
        world, pts = _region_world(seed, stream, split, region, s, config, style)
        pts = pts[:num - produced]
        for i, (x, y) in enumerate(pts):
            prng = np.random.default_rng(_seed(seed, stream, split, region, i))
            yield _make_pair(world, x, y, prng, s, tuple(ground_size), config, view,
                             horizon_fraction, north_column_fraction, fov_deg, with_labels)
        produced += len(pts)
        region += 1
        if region > 10 * num + 10:
            raise RuntimeError("iter_pairs: could not place camera positions; lower "
                               "min_spacing_m or tile_extent_m")


def _make_pair(world, x, y, rng, s, ground_size, config, view, horizon_fraction,
               north_frac, fov_deg, with_labels):
    heading = None
    if view == "crop":
        heading = float(rng.uniform(0, 360))
        rgb, lab = render.render_ground(
            world, x, y, ground_size, horizon_fraction=horizon_fraction, heading_deg=heading,
            fov_deg=fov_deg, camera_height_m=config.camera_height_m,
            max_distance_m=config.max_distance_m)
        tile = render.cut_tile(world, x, y, extent_m=config.tile_extent_m, size=s,
                               rotation_deg=heading)
    else:
        rgb, lab = render.render_ground(
            world, x, y, ground_size, horizon_fraction=horizon_fraction,
            north_column_fraction=north_frac, camera_height_m=config.camera_height_m,
            max_distance_m=config.max_distance_m)
        tile = render.cut_tile(world, x, y, extent_m=config.tile_extent_m, size=s)
    if config.location_tint > 0:
        tint = (1.0 + config.location_tint * rng.uniform(-1.0, 1.0, 3)).astype(np.float32)
        surface = (lab != render.SKY)[..., None]
        rgb = np.where(surface, np.minimum(rgb * tint, np.float32(255)), rgb)
        tile = np.minimum(tile * tint, np.float32(255)).astype(np.uint8)
    ground = render.degrade_ground(rgb, lab, rng, strength=config.ground_strength)
    tile = render.degrade_satellite(tile, rng, strength=config.satellite_strength)
    e, n = world.pixel_to_utm(x, y)
    return Pair(tile, ground, float(e), float(n), heading, lab if with_labels else None)


# ------------------------------------------------------------------ parallel writing
@dataclasses.dataclass(frozen=True)
class _Stream:
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


def _cached_region(st: _Stream, region: int):
    key = (st.seed, st.stream, st.split, region, st.sat, st.config, st.style)
    if key not in _REGION_CACHE:
        _REGION_CACHE.clear()          # one map at a time (maps can be ~300 MB native)
        _REGION_CACHE[key] = _region_world(st.seed, st.stream, st.split, region, st.sat,
                                           st.config, st.style)
    return _REGION_CACHE[key]


def _run_chunk(st: _Stream, region: int, lo: int, hi: int):
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
        prng = np.random.default_rng(_seed(st.seed, st.stream, st.split, region, i))
        pair = _make_pair(world, x, y, prng, st.sat, st.ground_size, st.config, st.view,
                          st.horizon_fraction, st.north_frac, st.fov_deg, with_labels)
        paths = []
        for n, (attr, folder, ext) in enumerate(st.files):
            path = os.path.join(st.out_dir, folder, f".{st.stream}-{st.split}-{region}-{i}-{n}"
                                f"{ext}.tmp-{os.getpid()}")
            with open(path, "wb") as f:
                f.write(_encode(getattr(pair, attr), ext, st.quality))
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


class _Runner:
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


class _Plan:
    """The chunks of one stream: positions of region 0, then region 1, ... (in order),
    re-planned when a region holds fewer positions than pairs_per_region."""

    def __init__(self, runner: _Runner, st: _Stream, num: int, chunk: int):
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


def _num_workers(workers, total):
    if workers is None:
        # a pool costs ~0.1-1 s to start: only worth it for a few hundred pairs
        return 1 if total < 200 else max(1, os.cpu_count() or 1)
    if not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"write_dataset: workers={workers!r} must be an int >= 1 or None")
    return int(workers)


def _chunk_size(config: WorldConfig, counts, workers: int) -> int:
    ppr = config.pairs_per_region
    if workers <= 1:
        return ppr
    regions = sum(-(-n // ppr) for n in counts if n)
    splits = max(1, -(-2 * workers // max(regions, 1)))
    return max(4, -(-ppr // splits))


# ----------------------------------------------------------------------------- io
def _atomic_bytes(path: str, data: bytes):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _encode(arr: np.ndarray, ext: str, quality: int = 90) -> bytes:
    """uint8 image -> PNG (ext ".png") or JPEG bytes."""
    buf = io.BytesIO()
    if ext == ".png":
        Image.fromarray(arr).save(buf, "PNG")
    else:
        Image.fromarray(arr).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _save_image(path: str, arr: np.ndarray, quality: int = 90):
    _atomic_bytes(path, _encode(arr, ".png" if path.endswith(".png") else ".jpg", quality))


def _save_text(path: str, lines):
    _atomic_bytes(path, "".join(line + "\n" for line in lines).encode())


def _check_size(name, size, square=False):
    if not (isinstance(size, (tuple, list)) and len(size) == 2
            and all(isinstance(v, (int, np.integer)) and v >= 8 for v in size)):
        raise ValueError(f"write_dataset: {name}={size!r} must be (H, W) ints >= 8")
    if square and size[0] != size[1]:
        raise ValueError(f"write_dataset: {name}={size!r} must be square")
    return int(size[0]), int(size[1])


def _check_count(name, v):
    if not isinstance(v, (int, np.integer)) or v < 0:
        raise ValueError(f"write_dataset: {name}={v!r} must be an int >= 0")
    return int(v)


def write_dataset(out_dir: str, layout: str = "cvusa", num_train: int = 64,
                  num_val: int = 16, seed: int = 0, satellite_size=None, ground_size=None,
                  num_test: int | None = None, native_sizes: bool = False,
                  config: WorldConfig | None = None, jpeg_quality: int = 90,
                  write_annotations: bool = False, workers: int | None = None) -> dict:
    """Writes a complete synthetic dataset in a real distribution's layout.

    Args:
      out_dir: dataset root (created); existing files of the same names are replaced.
      layout: "cvusa", "cvact" or "vohays" (see the module docstring for the files), or
        "university1652" (see :mod:`cvmnet_tf.data.synthetic.university1652`: then
        num_train / num_val count training / test buildings, 4 drone views each, and the
        sizes default to 128x128 satellite and drone images).
      num_train, num_val: pairs per split. Vo & Hays has no val split: its Denver test
        set gets num_test pairs, or num_val when num_test is None.
      seed: everything is a deterministic function of (seed, layout, sizes, config) --
        byte-identical files for any number of workers.
      satellite_size: (S, S) satellite pixels; default small (256, 256), Vo & Hays (128, 128).
      ground_size: (H, W) ground pixels; CVUSA (64, 256), CVACT (128, 256) -- the FULL image
        height, content in the central half rows --, Vo & Hays (128, 128) square crops.
      num_test: CVACT: extra pairs appended to valSetAll (ACT_test); Vo & Hays: test pairs;
        CVUSA: must be None or 0.
      native_sizes: use the real sizes (CVUSA 750x750 / 224x1232 -- the only panorama size
        the released CVUSA input pipeline accepts at the paper image size --, CVACT
        1200x1200 / 832x1664, Vo & Hays 250x250 / 230x230); conflicts with explicit sizes.
      config: WorldConfig (tile extent, spacing, jitter strength...).
      jpeg_quality: JPEG quality of all images.
      write_annotations: CVUSA only: also write streetview/annotations/<id>.png label maps.
      workers: processes that render and encode pairs (chunks of a region's positions;
        images are written under temporary names and renamed in order by this process).
        None: os.cpu_count() from 200 pairs on, 1 (this process) below.
    Returns:
      dict with "layout", "out_dir", "counts" {split: n}, "satellite_size", "ground_size",
      "workers", "seconds", "pairs_per_second" (also saved to synthetic_meta.json).
    """
    if layout == "university1652":
        if num_test or native_sizes or write_annotations:
            raise ValueError("write_dataset(layout='university1652'): num_test, native_sizes and "
                             "write_annotations do not apply (num_train / num_val count buildings)")
        from cvmnet_tf.data.synthetic.university1652 import write_university1652

        return write_university1652(out_dir, num_train, num_val, seed=seed,
                                    satellite_size=tuple(satellite_size or (128, 128)),
                                    drone_size=tuple(ground_size or (128, 128)), config=config,
                                    jpeg_quality=jpeg_quality)
    if layout not in LAYOUTS:
        raise ValueError(f"write_dataset: layout={layout!r} must be one of {ALL_LAYOUTS}")
    num_train = _check_count("num_train", num_train)
    num_val = _check_count("num_val", num_val)
    if num_test is not None:
        num_test = _check_count("num_test", num_test)
    if native_sizes and (satellite_size is not None or ground_size is not None):
        raise ValueError("write_dataset: pass either native_sizes=True or explicit sizes")
    table = NATIVE_SIZES if native_sizes else SMALL_SIZES
    sat = _check_size("satellite_size", tuple(satellite_size or table[layout][0]), square=True)
    grd = _check_size("ground_size", tuple(ground_size or table[layout][1]),
                      square=(layout == "vohays"))
    config = config or WorldConfig()
    if layout == "cvusa" and num_test:
        raise ValueError("write_dataset: CVUSA has only train/val splits; num_test must "
                         "be None or 0")
    if layout == "vohays" and num_test is not None and num_test and num_val:
        raise ValueError("write_dataset: Vo & Hays has train/test only; give the test "
                         "size as num_test (or num_val), not both")
    n_workers = _num_workers(workers, num_train + num_val + (num_test or 0))
    t0 = time.perf_counter()
    os.makedirs(out_dir, exist_ok=True)
    runner, ok = _Runner(n_workers), False
    try:
        if layout == "cvusa":
            counts = _write_cvusa(runner, out_dir, num_train, num_val, seed, sat, grd, config,
                                  jpeg_quality, write_annotations)
        elif layout == "cvact":
            counts = _write_cvact(runner, out_dir, num_train, num_val, num_test or 0, seed, sat,
                                  grd, config, jpeg_quality)
        else:
            counts = _write_vohays(runner, out_dir, num_train,
                                   num_test if num_test is not None else num_val,
                                   seed, sat, grd, config, jpeg_quality)
        ok = True
    finally:
        runner.close(ok)
    secs = time.perf_counter() - t0
    total = sum(counts.values())
    info = {"layout": layout, "out_dir": os.path.abspath(out_dir), "counts": counts,
            "seed": seed, "satellite_size": list(sat), "ground_size": list(grd),
            "native_sizes": bool(native_sizes), "config": dataclasses.asdict(config),
            "workers": n_workers, "seconds": round(secs, 3),
            "pairs_per_second": round(total / max(secs, 1e-9), 1),
            "generator": "cvmnet_tf.data.synthetic"}
    _atomic_bytes(os.path.join(out_dir, "synthetic_meta.json"),
                  json.dumps(info, indent=1).encode())
    return info


def _plans(runner, streams):
    """[(_Stream, num)] -> list of _Plan, all submitted before any is consumed."""
    if not streams:
        return []
    chunk = _chunk_size(streams[0][0].config, [n for _, n in streams], runner.workers)
    return [_Plan(runner, st, n, chunk) for st, n in streams]


def _write_cvusa(runner, out_dir, num_train, num_val, seed, sat, grd, config, q, annotations):
    files = (("satellite", "bingmap/19", ".jpg"), ("ground", "streetview/panos", ".jpg"))
    if annotations:
        files += (("ground_labels", "streetview/annotations", ".png"),)
    todo = (("train", num_train, "train-19zl.csv"), ("val", num_val, "val-19zl.csv"))
    plans = _plans(runner, [(_Stream(out_dir, seed, _STREAMS["cvusa"], _SPLIT_STREAM[split],
                                     sat[0], grd, config, files, q), n) for split, n, _ in todo])
    counts, next_id = {}, 1
    for (split, n, fname), plan in zip(todo, plans):
        lines = []
        for _, _, _, paths in plan.results():
            pid = f"{next_id:07d}"
            next_id += 1
            s_rel, g_rel = f"bingmap/19/{pid}.jpg", f"streetview/panos/{pid}.jpg"
            a_rel = f"streetview/annotations/{pid}.png"
            for src, rel in zip(paths, (s_rel, g_rel, a_rel)):
                os.replace(src, os.path.join(out_dir, rel))
            lines.append(f"{s_rel},{g_rel},{a_rel}")
        _save_text(os.path.join(out_dir, "splits", fname), lines)
        counts[split] = len(lines)
    return counts


_ID_CHARS = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"))


def _cvact_ids(n, seed):
    rng = np.random.default_rng(_seed(seed, _STREAMS["cvact"], 99))
    ids, seen = [], set()
    while len(ids) < n:
        s = "".join(rng.choice(_ID_CHARS, 22))
        if s not in seen:
            seen.add(s)
            ids.append(s)
    return ids


def _write_cvact(runner, out_dir, num_train, num_val, num_test, seed, sat, grd, config, q):
    import scipy.io

    total = num_train + num_val + num_test
    ids = _cvact_ids(total, seed)
    utm = np.zeros((total, 2), np.float64)
    # pairs are stored in a shuffled order so that split indices are not contiguous
    order = np.random.default_rng(_seed(seed, _STREAMS["cvact"], 98)).permutation(total)
    slots = {"train": order[:num_train], "val": order[num_train:num_train + num_val],
             "test": order[num_train + num_val:]}
    files = (("ground", "streetview", ".jpg"), ("satellite", "satview_polish", ".jpg"))
    todo = (("train", num_train), ("val", num_val), ("test", num_test))
    plans = _plans(runner, [(_Stream(out_dir, seed, _STREAMS["cvact"], _SPLIT_STREAM[split],
                                     sat[0], grd, config, files, q, horizon_fraction=0.5), n)
                            for split, n in todo])
    for (split, _), plan in zip(todo, plans):
        for slot, (e, n, _, paths) in zip(slots[split], plan.results()):
            pid = ids[slot]
            os.replace(paths[0], os.path.join(out_dir, "streetview", f"{pid}_grdView.jpg"))
            os.replace(paths[1], os.path.join(out_dir, "satview_polish",
                                              f"{pid}_satView_polish.jpg"))
            utm[slot] = (e, n)

    def col(idx):
        return (np.asarray(idx, np.float64) + 1).reshape(-1, 1)   # 1-based (n, 1)

    mat = {"panoIds": np.array(ids, dtype=f"<U22") if total else np.zeros((0,), "<U22"),
           "utm": utm,
           "trainSet": {"trainInd": col(slots["train"])},
           "valSet": {"valInd": col(slots["val"])},
           "valSetAll": {"valInd": col(np.concatenate([slots["val"], slots["test"]]))}}
    buf = io.BytesIO()
    scipy.io.savemat(buf, mat)
    data = bytearray(buf.getvalue())
    # the 116-byte text header holds a creation time: fixed text keeps the file a
    # function of the seed
    data[:116] = b"MATLAB 5.0 MAT-file, written by cvmnet_tf.data.synthetic".ljust(116)
    _atomic_bytes(os.path.join(out_dir, "ACT_data.mat"), bytes(data))
    return {"train": num_train, "val": num_val, "test": num_val + num_test}


def _write_vohays(runner, out_dir, num_train, num_test, seed, sat, grd, config, q):
    per_city = [num_train // len(VOHAYS_TRAIN_CITIES)] * len(VOHAYS_TRAIN_CITIES)
    for i in range(num_train % len(VOHAYS_TRAIN_CITIES)):
        per_city[i] += 1
    jobs = {"train": list(zip(VOHAYS_TRAIN_CITIES, per_city)),
            "test": [(VOHAYS_TEST_CITY, num_test)]}
    streams = []
    for split, cities in jobs.items():
        for city, n in cities:
            city_idx = (VOHAYS_TRAIN_CITIES + (VOHAYS_TEST_CITY,)).index(city)
            style = WorldStyle.random(np.random.default_rng(_seed(seed, 77, city_idx)))
            files = (("ground", f"{city}/streetview", ".jpg"),
                     ("satellite", f"{city}/overhead", ".jpg"))
            streams.append((_Stream(out_dir, seed, _STREAMS["vohays"], 10 + city_idx, sat[0], grd,
                                    config, files, q, view="crop", horizon_fraction=0.4,
                                    style=style), n))
    plans = iter(_plans(runner, streams))
    counts, label = {}, 0
    for split, cities in jobs.items():
        street, over, pairs = [], [], []
        for city, _ in cities:
            for _, _, _, paths in next(plans).results():
                pid = f"{label:07d}"
                g_rel, s_rel = f"{city}/streetview/{pid}.jpg", f"{city}/overhead/{pid}.jpg"
                os.replace(paths[0], os.path.join(out_dir, g_rel))
                os.replace(paths[1], os.path.join(out_dir, s_rel))
                street.append(f"{g_rel} {label}")
                over.append(f"{s_rel} {label}")
                pairs.append(f"{g_rel} {s_rel}")
                label += 1
        stem = "train" if split == "train" else f"test_{VOHAYS_TEST_CITY}"
        _save_text(os.path.join(out_dir, f"{stem}.streetview.txt"), street)
        _save_text(os.path.join(out_dir, f"{stem}.overhead.txt"), over)
        _save_text(os.path.join(out_dir, f"{split}_pairs.txt"), pairs)
        counts[split] = len(street)
    return counts


def write_map(out_dir: str, seed: int = 0, size_m=(512.0, 768.0), metres_per_pixel: float = 0.5,
              num_panoramas: int = 16, ground_size=(64, 256), min_spacing_m: float = 40.0,
              margin_m: float = 60.0, config: WorldConfig | None = None,
              origin=(350000.0, 140000.0), jpeg_quality: int = 90) -> dict:
    """Writes one geo-referenced map and ground panoramas at known positions
    (the localization experiment, paper section 5.5, at toy scale).

    Files: ``map.png`` (the whole satellite map, north up, lossless), ``map.json``
    (SyntheticMap.bounds(): metres_per_pixel, origin_easting/northing of the north-west
    corner, extent, seed), ``panoramas/<id>.jpg`` (north-aligned panoramas like CVUSA's)
    and ``panoramas.csv`` with header ``path,easting,northing,x_px,y_px``.

    Args:
      out_dir: output folder.
      seed: map seed.
      size_m: (north-south, east-west) extent in metres.
      metres_per_pixel: map resolution.
      num_panoramas: query panoramas (fewer if the map is too small for min_spacing_m).
      ground_size: (H, W) panorama pixels.
      min_spacing_m, margin_m: spacing of query positions and distance to the border.
      config: WorldConfig for the camera and the photometric jitter.
      origin: (easting, northing) metres of the north-west corner.
    Returns:
      dict: the bounds plus "panoramas": list of (path, easting, northing).
    """
    config = config or WorldConfig()
    grd = _check_size("ground_size", tuple(ground_size))
    if len(size_m) != 2 or min(size_m) <= 2 * margin_m:
        raise ValueError(f"write_map: size_m={size_m} must be (NS, EW) metres > 2*margin_m")
    shape = (int(round(size_m[0] / metres_per_pixel)), int(round(size_m[1] / metres_per_pixel)))
    world = generate_map((seed, _STREAMS["map"]), shape, metres_per_pixel, origin)
    rng = np.random.default_rng(_seed(seed, _STREAMS["map"], 1))
    pts = sample_locations(world, int(num_panoramas), rng, min_spacing_m=min_spacing_m,
                           margin_m=margin_m)
    _save_image(os.path.join(out_dir, "map.png"), world.satellite)
    rows, listing = ["path,easting,northing,x_px,y_px"], []
    for i, (x, y) in enumerate(pts):
        prng = np.random.default_rng(_seed(seed, _STREAMS["map"], 2, i))
        rgb, lab = render.render_ground(world, x, y, grd, camera_height_m=config.camera_height_m,
                                        max_distance_m=config.max_distance_m)
        img = render.degrade_ground(rgb, lab, prng, strength=config.ground_strength)
        rel = f"panoramas/{i:05d}.jpg"
        _save_image(os.path.join(out_dir, rel), img, jpeg_quality)
        e, n = world.pixel_to_utm(x, y)
        rows.append(f"{rel},{e:.3f},{n:.3f},{x:.3f},{y:.3f}")
        listing.append((rel, float(e), float(n)))
    _save_text(os.path.join(out_dir, "panoramas.csv"), rows)
    meta = dict(world.bounds(), seed=seed, ground_size=list(grd),
                camera_height_m=config.camera_height_m, num_panoramas=len(listing))
    _atomic_bytes(os.path.join(out_dir, "map.json"), json.dumps(meta, indent=1).encode())
    return dict(meta, panoramas=listing)
