"""The VIGOR layout written from the synthetic world (read by :mod:`cvmnet_tf.data.vigor`).

:func:`write_vigor_dataset` is the registry's writer (``cvmnet-synthetic --layout vigor``,
``train_vigor.py --synthetic``): ``num_train`` / ``num_val`` panoramas in all (the
same-area train / test split), spread over the four cities; :func:`write_vigor` takes the
geometry explicitly.

Per city (Chicago, NewYork, SanFrancisco, Seattle by default) one synthetic region is
generated; satellite tiles are cut on a regular grid whose spacing is HALF the tile
extent, as VIGOR's (so every point of the inner area is covered by 4 tiles); panoramas
are rendered at random open-ground positions, off the tile centres, and labelled as
VIGOR labels them: the positive is the tile with the nearest centre (the query lies in
its central quarter), the 3 semi-positives are the other tiles of the 2 x 2 block of
centres around the query.

Geometry is VIGOR's at a lower pixel resolution: a tile spans ``640 * 0.114 = 72.96 m``
(``TILE_EXTENT_M``), written at ``satellite_size`` pixels; label offsets are in pixels of
the 640 px tile (0.114 m each, integers written as ``23.0`` like the release), from the
query to the tile centre, ``(d_lat, d_lon)`` = (metres north, metres east) / 0.114.

Geo-reference: each city has a reference point (its real latitude/longitude, see
``CITY_ORIGINS``) at the north-west corner of its region; metres map to degrees on
VIGOR's sphere (R = 6,371,004 m), ``lat = lat0 + northing_offset / R``, ``lon = lon0 +
easting_offset / (R cos lat0)`` (radians). Over a few hundred metres this agrees with
VIGOR's ``Lat_Lng`` / ``gps2distance`` to well under a millimetre per 36 m.

Files (names and line formats of the release; everything written atomically)::

    <out>/<City>/satellite/satellite_<lat>_<lon>.png      (lat/lon as Python repr)
    <out>/<City>/panorama/<22-char id>,<lat .6f>,<lon .6f>,.jpg   equirectangular, 2:1,
                                                           north at the centre column
    <out>/splits/<City>/satellite_list.txt                south to north, then west to east
    <out>/splits/<City>/pano_label_balanced.txt           every panorama (cross-area)
    <out>/splits/<City>/same_area_balanced_{train,test}.txt   a seeded partition of them
    <out>/synthetic_meta.json                             parameters and true positions

The panorama orientation of the real VIGOR (where north lies) is not verified here; the
synthetic panoramas follow CVUSA's convention (north at the centre column, as
``render.view_angles`` with ``north_column_fraction=0.5``).
"""
from __future__ import annotations

import dataclasses
import math
import os
from typing import Sequence

import numpy as np

from cvmnet_tf.data import vigor
from cvmnet_tf.data.synthetic.files import save_image, save_json, save_text
from cvmnet_tf.data.synthetic.config import STREAMS, WorldConfig
from cvmnet_tf.data.synthetic.render import cut_tile, degrade_ground, degrade_satellite, render_ground
from cvmnet_tf.data.synthetic.world import generate_map, sample_locations

EARTH_RADIUS_M = 6371004.0  # VIGOR's gps2distance sphere
TILE_EXTENT_M = vigor.TILE_SIZE_PX * vigor.METRES_PER_PIXEL   # 72.96 m
GRID_STEP_M = TILE_EXTENT_M / 2.0                               # 36.48 m
CITY_ORIGINS = {"NewYork": (40.75, -74.00), "Seattle": (47.62, -122.35),
                "SanFrancisco": (37.78, -122.44), "Chicago": (41.89, -87.69)}
_ID_CHARS = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"))
_STREAM = STREAMS["vigor"]


def metres_to_latlon(north_m, east_m, origin_latlon) -> tuple:
    """(lat, lon) degrees of a point ``north_m`` / ``east_m`` metres from ``origin_latlon``
    (the local spherical mapping of the module docstring; arrays broadcast)."""
    lat0 = math.radians(origin_latlon[0])
    lat = origin_latlon[0] + np.degrees(np.asarray(north_m, np.float64) / EARTH_RADIUS_M)
    lon = origin_latlon[1] + np.degrees(np.asarray(east_m, np.float64) / (EARTH_RADIUS_M * math.cos(lat0)))
    return lat, lon


def _check_positive(name, value, kind=int):
    if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int) or value <= 0:
        raise ValueError(f"write_vigor: {name}={value!r} must be a positive {kind.__name__}")
    return kind(value)


def _city_region(seed, ci, region_m, mpp, config: WorldConfig):
    side = int(round(region_m / mpp))
    return generate_map((seed, _STREAM, ci), (side, side), mpp, origin=(0.0, 0.0), **config.map_options())


def write_vigor(out_dir: str, *, seed: int = 0, cities: Sequence[str] = vigor.CITIES,
                panoramas_per_city: int = 12, region_m: float = 220.0, satellite_size: int = 64,
                panorama_size=(64, 128), metres_per_pixel: float = 0.5, same_area_test_fraction: float = 0.5,
                min_spacing_m: float = 12.0, ground_strength: float = 1.0, satellite_strength: float = 1.0,
                camera_height_m: float = 2.0, max_distance_m: float = 60.0, jpeg_quality: int = 90,
                world: WorldConfig | None = None) -> dict:
    """Write a synthetic dataset in the VIGOR layout (module docstring).

    Args:
      out_dir: output folder (created).
      seed: everything is a function of it.
      cities: cities to write (names of :data:`cvmnet_tf.data.vigor.CITIES`); same-area
        loading needs all four, cross-area the two of a split.
      panoramas_per_city: query panoramas per city (fewer if the region is full).
      region_m: side of each city's square region, metres (>= 3 grid steps of 36.48 m).
      satellite_size: tile side in pixels (VIGOR: 640).
      panorama_size: (H, W) pixels, W = 2 H (VIGOR: 1024 x 2048).
      metres_per_pixel: resolution of the generated map.
      same_area_test_fraction: share of each city's panoramas in ``same_area_balanced_test``.
      min_spacing_m: minimum distance between two panoramas of a city.
      ground_strength, satellite_strength: photometric jitter (0 = clean renders).
      camera_height_m, max_distance_m: ground camera geometry.
      world: the :class:`~cvmnet_tf.data.synthetic.WorldConfig` whose map style (ground
        palette, sun range) and ground lighting (``ground_sun``: a sun per view) are used
        (default ``WorldConfig()``, world v2); the two views of a place share the place only.

    Returns:
      dict with per-city counts and ``truth``: per city, the panoramas' true metric
      positions (north, east from the region's north-west corner) and their tiles.
    """
    cities = tuple(cities)
    bad = [c for c in cities if c not in vigor.CITIES]
    if bad or not cities:
        raise ValueError(f"write_vigor: cities must be among {vigor.CITIES}; got {list(cities)}")
    n_pano = _check_positive("panoramas_per_city", panoramas_per_city)
    s = _check_positive("satellite_size", satellite_size)
    region_m = _check_positive("region_m", region_m, float)
    mpp = _check_positive("metres_per_pixel", metres_per_pixel, float)
    h, w = (int(v) for v in panorama_size)
    if h < 8 or w < 8:
        raise ValueError(f"write_vigor: panorama_size={panorama_size} must be (H, W) >= 8")
    k = int(math.floor((region_m - TILE_EXTENT_M) / GRID_STEP_M + 1e-9)) + 1   # tile centres per axis
    if k < 2:
        raise ValueError(f"write_vigor: region_m={region_m} is too small for a 2 x 2 block of "
                         f"{TILE_EXTENT_M:g} m tiles (need >= {TILE_EXTENT_M + GRID_STEP_M:g} m)")
    if not 0 <= same_area_test_fraction <= 1:
        raise ValueError(f"write_vigor: same_area_test_fraction={same_area_test_fraction} must be in [0, 1]")
    world_config = world or WorldConfig()
    grid_m = GRID_STEP_M * (1 + np.arange(k))          # centre offsets from the NW corner, metres
    info = {"cities": {}, "truth": {}, "tile_extent_m": TILE_EXTENT_M, "grid_step_m": GRID_STEP_M}
    for ci, city in enumerate(cities):
        world = _city_region(seed, vigor.CITIES.index(city), region_m, mpp, world_config)
        origin = CITY_ORIGINS[city]
        rng = np.random.default_rng(np.random.SeedSequence([seed, _STREAM, vigor.CITIES.index(city), 1]))
        # tiles: row index r = south -> north (satellite_list order), column c = west -> east
        north_of_row = -grid_m[::-1]                     # northing offsets (negative = south of the NW corner)
        sat_names, sat_pos = [], []
        for r in range(k):
            for c in range(k):
                n_m, e_m = north_of_row[r], grid_m[c]
                lat, lon = metres_to_latlon(n_m, e_m, origin)
                name = f"satellite_{float(lat)!r}_{float(lon)!r}.png"
                tile = cut_tile(world, e_m / mpp - 0.5, -n_m / mpp - 0.5, extent_m=TILE_EXTENT_M, size=s)
                tile = degrade_satellite(tile, rng, strength=satellite_strength)
                save_image(os.path.join(out_dir, city, "satellite", name), tile)
                sat_names.append(name)
                sat_pos.append((n_m, e_m))
        sat_pos = np.array(sat_pos)
        # panoramas: inside the hull of the tile centres, so that all 4 covering tiles exist
        margin = max(GRID_STEP_M, region_m - GRID_STEP_M * k) + 1.0
        pts = sample_locations(world, n_pano, rng, min_spacing_m=min_spacing_m, margin_m=margin)
        e_pano, n_pano_m = world.pixel_to_utm(pts[:, 0], pts[:, 1])
        lines, truth = [], []
        for i, (x, y) in enumerate(pts):
            e_q, n_q = float(e_pano[i]), float(n_pano_m[i])
            # the 2 x 2 block of centres around the query
            c0 = int(np.clip(np.floor(e_q / GRID_STEP_M) - 1, 0, k - 2))
            r_north = int(np.clip(np.floor(-n_q / GRID_STEP_M) - 1, 0, k - 2))   # row counted from the north
            block = [(k - 1 - (r_north + dr), c0 + dc) for dr in (0, 1) for dc in (0, 1)]
            rows = [r * k + c for r, c in block]
            d = sat_pos[rows] - [n_q, e_q]                       # query -> centre, metres (north, east)
            order = np.argsort(np.hypot(d[:, 0], d[:, 1]), kind="stable")
            rows = [rows[j] for j in order]
            d = d[order]
            px = np.rint(d / vigor.METRES_PER_PIXEL)
            rgb, lab = render_ground(world, float(x), float(y), (h, w), horizon_fraction=0.5,
                                     north_column_fraction=0.5, camera_height_m=camera_height_m,
                                     max_distance_m=max_distance_m,
                                     sun_azimuth_deg=world_config.ground_sun_azimuth(rng))
            img = degrade_ground(rgb, lab, rng, strength=ground_strength)
            lat, lon = metres_to_latlon(n_q, e_q, origin)
            pano_id = "".join(rng.choice(_ID_CHARS, 22))
            pano = f"{pano_id},{float(lat):.6f},{float(lon):.6f},.jpg"
            save_image(os.path.join(out_dir, city, "panorama", pano), img, jpeg_quality)
            lines.append(" ".join([pano] + [f"{sat_names[r]} {p[0]:.1f} {p[1]:.1f}" for r, p in zip(rows, px)]))
            truth.append({"panorama": pano, "north_m": n_q, "east_m": e_q, "tiles": [sat_names[r] for r in rows],
                          "offsets_m": d.tolist()})
        perm = rng.permutation(len(lines))
        n_test = int(round(same_area_test_fraction * len(lines)))
        test = sorted(perm[:n_test].tolist())
        train = sorted(perm[n_test:].tolist())
        split_dir = os.path.join(out_dir, "splits", city)
        save_text(os.path.join(split_dir, vigor.SATELLITE_LIST), sat_names)
        save_text(os.path.join(split_dir, vigor.label_file_name("cross", "test")), lines)
        save_text(os.path.join(split_dir, vigor.label_file_name("same", "train")), [lines[i] for i in train])
        save_text(os.path.join(split_dir, vigor.label_file_name("same", "test")), [lines[i] for i in test])
        info["cities"][city] = {"satellites": len(sat_names), "panoramas": len(lines), "same_area_train": len(train),
                                "same_area_test": len(test), "origin_latlon": list(origin)}
        info["truth"][city] = truth
    meta = dict(info, seed=seed, world=dataclasses.asdict(world_config), satellite_size=s, panorama_size=[h, w],
                metres_per_pixel=mpp, region_m=region_m,
                offsets="(d_lat, d_lon) pixels of a 640 px tile at 0.114 m, query -> tile centre",
                geo_reference="lat = lat0 + north/R, lon = lon0 + east/(R cos lat0), R = 6371004 m; origin = the "
                              "north-west corner of each city's region")
    save_json(os.path.join(out_dir, "synthetic_meta.json"), meta)
    return info


#: Default sizes: small for CPU runs, and the distribution's (640 x 640 tiles, 1024 x 2048 panoramas).
SMALL_SIZES = ((64, 64), (64, 128))
NATIVE_SIZES = ((640, 640), (1024, 2048))


def write_vigor_dataset(out_dir: str, num_train: int = 64, num_val: int = 16, *, seed: int = 0,
                        satellite_size=None, ground_size=None, num_test=None, native_sizes: bool = False,
                        config: WorldConfig | None = None, jpeg_quality: int = 90, write_annotations: bool = False,
                        workers=None) -> dict:
    """A synthetic VIGOR dataset with about ``num_train`` same-area training and
    ``num_val`` same-area test panoramas (arguments as
    :func:`cvmnet_tf.data.synthetic.write_dataset`).

    The panoramas are spread evenly over the four cities (each city's region grows so that
    they fit at 12 m spacing); cross-area splits use the cities' whole label files as the
    release does. ``config`` supplies the camera geometry, the photometric strengths, the map
    style and the ground lighting (``write_vigor``'s ``world``). ``workers`` is
    accepted for a uniform interface; the writer runs in this process. Returns the counts and sizes (also in ``synthetic_meta.json``).
    """
    import time

    if num_test:
        raise ValueError("write_dataset: VIGOR has train/test splits only (num_val = same-area test panoramas); "
                         "num_test must be None or 0")
    if write_annotations:
        raise ValueError("write_dataset: write_annotations is CVUSA only")
    for name, value in (("num_train", num_train), ("num_val", num_val)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"write_dataset: {name}={value!r} must be an integer >= 0")
    if num_train + num_val < 4:
        raise ValueError("write_dataset: VIGOR needs at least 4 panoramas (one per city)")
    if native_sizes and (satellite_size is not None or ground_size is not None):
        raise ValueError("write_dataset: native_sizes conflicts with explicit satellite_size / ground_size")
    sat_default, grd_default = NATIVE_SIZES if native_sizes else SMALL_SIZES
    sat = tuple(int(v) for v in (satellite_size or sat_default))
    if len(sat) != 2 or sat[0] != sat[1]:
        raise ValueError(f"write_dataset: satellite_size={satellite_size!r} must be square (S, S)")
    grd = tuple(int(v) for v in (ground_size or grd_default))
    config = config or WorldConfig()
    per_city = -(-(num_train + num_val) // len(vigor.CITIES))
    spacing = 12.0
    region_m = max(220.0, math.sqrt(3.0 * per_city) * spacing + 2 * (GRID_STEP_M + 1.0) + TILE_EXTENT_M / 2)
    t0 = time.perf_counter()
    info = write_vigor(out_dir, seed=seed, panoramas_per_city=per_city, region_m=region_m, satellite_size=sat[0],
                       panorama_size=grd, same_area_test_fraction=num_val / (num_train + num_val),
                       min_spacing_m=spacing, ground_strength=config.ground_strength,
                       satellite_strength=config.satellite_strength, camera_height_m=config.camera_height_m,
                       max_distance_m=config.max_distance_m, jpeg_quality=jpeg_quality,
                       world=config)
    counts = {"train": sum(c["same_area_train"] for c in info["cities"].values()),
              "test": sum(c["same_area_test"] for c in info["cities"].values()),
              "satellites": sum(c["satellites"] for c in info["cities"].values())}
    seconds = time.perf_counter() - t0
    return {"layout": "vigor", "out_dir": out_dir, "counts": counts, "satellite_size": list(sat),
            "ground_size": list(grd), "region_m": region_m, "workers": 1, "seconds": round(seconds, 2),
            "pairs_per_second": round((counts["train"] + counts["test"]) / max(seconds, 1e-9), 1)}
