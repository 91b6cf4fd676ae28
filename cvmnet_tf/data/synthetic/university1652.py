"""Synthetic University-1652 (Zheng et al., ACM MM 2020) in the real folder layout.

Every class ("building") is one place of the synthetic world; its folder name is a 4-digit
zero-padded id, train and test ids disjoint (a shuffled 0001..N, as the real ids are
interleaved). Files::

  train/satellite/<id>/<id>.jpg            one north-up tile per class
  train/drone/<id>/image-01.jpeg ...       views_per_class oblique drone views
  train/street/<id>/street-01.jpg ...      street_views_per_class ground crops
  test/query_satellite/<id>/<id>.jpg       test classes
  test/gallery_satellite/<id>/<id>.jpg     test classes + extra (satellite-only) classes
  test/query_drone/<id>/image-XX.jpeg      drone views of the test classes
  test/gallery_drone/<id>/image-XX.jpeg    drone views of the test + extra classes
  test/query_street/<id>/street-XX.jpg     street views of the test classes
  test/gallery_street/<id>/street-XX.jpg   other street views (other headings) of the
                                           test + extra classes
  synthetic_meta.json

As in the real data the same drone / satellite image appears in the query and the gallery
folder of the other direction (query_drone is a subset of gallery_drone). The real
``train/google`` folder (noisy web images) is not generated.

Drone views (see drone.py) circle the place: view k looks at the class's target point
from heading phase + 360 k / views_per_class (+-5 degrees jitter), alternating between
two flight levels derived from the tile extent so that the view covers about one tile:
pitch 65 degrees at slant range 1.25 x (tile extent / (2 tan(fov / 2))) and pitch 55
degrees at 1.0 x that range (altitude and distance jittered +-5 %). Satellite tiles are
``render.cut_tile`` at ``config.tile_extent_m``; street views are 90-degree ground crops
(``render.render_ground``) from the target point at random headings. A per-class colour
cast ``1 + config.location_tint * U(-1, 1)`` per channel is shared by the tile, the drone
and the street views of a place, exactly as ``layouts.iter_pairs`` does for pairs.
"""
from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import time

import numpy as np
from PIL import Image

from cvmnet_tf.data.synthetic import render
from cvmnet_tf.data.synthetic.drone import footprint_radius_m, render_drone_view
from cvmnet_tf.data.synthetic.layouts import (WorldConfig, _atomic_bytes, _region_origin,
                                              _seed)
from cvmnet_tf.data.synthetic.world import SKY, generate_map, sample_locations

STREAM = 5                      # seed stream of this layout (layouts uses 1..4)
_SPLITS = {"train": 0, "test": 1}
# (pitch below horizontal in degrees, slant range as a multiple of the base range)
FLIGHT_LEVELS = ((65.0, 1.25), (55.0, 1.0))
DRONE_FOV_DEG = 60.0
STREET_FOV_DEG = 90.0
_LOCATIONS_PER_REGION = 32      # fixed, so that the first n classes do not depend on n


def _err(msg):
    return ValueError(f"write_university1652: {msg}")


def _size(name, v):
    if not (isinstance(v, (tuple, list)) and len(v) == 2
            and all(isinstance(a, (int, np.integer)) and a >= 8 for a in v)):
        raise _err(f"{name}={v!r} must be (H, W) ints >= 8")
    return int(v[0]), int(v[1])


def _count(name, v, minimum=0):
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < minimum:
        raise _err(f"{name}={v!r} must be an int >= {minimum}")
    return int(v)


def flight_plan(config: WorldConfig, drone_size, views_per_class: int,
                rng: np.random.Generator):
    """(heading_deg, altitude_m, distance_m) of the views of one class (list of tuples)."""
    base = config.tile_extent_m / (2 * math.tan(math.radians(DRONE_FOV_DEG) / 2))
    phase = float(rng.uniform(0, 360))
    plan = []
    for k in range(views_per_class):
        pitch, scale = FLIGHT_LEVELS[k % len(FLIGHT_LEVELS)]
        heading = (phase + 360.0 * k / views_per_class + rng.uniform(-5, 5)) % 360
        r = base * scale * rng.uniform(0.95, 1.05)
        p = math.radians(pitch + rng.uniform(-2, 2))
        plan.append((float(heading), float(r * math.sin(p)), float(r * math.cos(p))))
    return plan


def _geometry(config: WorldConfig, drone_size, satellite_side):
    """(map metres/pixel, margin_m, spacing_m, region_m) for the class locations."""
    base = config.tile_extent_m / (2 * math.tan(math.radians(DRONE_FOV_DEG) / 2))
    reach = 0.0
    for pitch, scale in FLIGHT_LEVELS:
        r = base * scale * 1.05
        p = math.radians(pitch - 2)
        reach = max(reach, footprint_radius_m(drone_size, altitude_m=r * math.sin(p),
                                              distance_m=r * math.cos(p),
                                              fov_deg=DRONE_FOV_DEG))
    margin = max(reach, 0.6 * config.tile_extent_m)
    spacing = max(config.min_spacing_m, 0.5 * config.tile_extent_m)
    region = max(config.region_m, 2 * margin + 4 * spacing)
    return config.map_resolution(satellite_side), margin, spacing, region


def _iter_places(split: int, n: int, seed: int, config: WorldConfig, sat_side, drone_size):
    """Yields n (world, x, y, rng) places of one split (regions generated lazily)."""
    mpp, margin, spacing, region_m = _geometry(config, drone_size, sat_side)
    side = int(round(region_m / mpp))
    produced, region = 0, 0
    while produced < n:
        world = generate_map((seed, STREAM, split, region), (side, side), mpp,
                             _region_origin(STREAM, split, region))
        rng = np.random.default_rng(_seed(seed, STREAM, split, region, 1 << 20))
        pts = sample_locations(world, _LOCATIONS_PER_REGION, rng, min_spacing_m=spacing,
                               margin_m=margin)
        for i, (x, y) in enumerate(pts[:n - produced]):
            yield world, float(x), float(y), np.random.default_rng(
                _seed(seed, STREAM, split, region, i))
        produced += min(len(pts), n - produced)
        region += 1
        if region > 10 * n + 10:
            raise RuntimeError("write_university1652: could not place classes; lower "
                               "config.tile_extent_m or min_spacing_m")


def _encode(arr, quality):
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _render_class(world, x, y, rng, config, sat_side, drone_size, views, street_sets):
    """Images of one class: (tile, [drone views], [[street views] per set])."""
    u = rng.uniform(-1.0, 1.0, 3)              # always drawn: tint does not shift the rest
    tint = (1.0 + config.location_tint * u).astype(np.float32)
    tile = render.cut_tile(world, x, y, extent_m=config.tile_extent_m, size=sat_side)
    if config.location_tint > 0:
        tile = np.clip(tile.astype(np.float32) * tint, 0, 255).astype(np.uint8)
    else:
        tint = None
    tile = render.degrade_satellite(tile, rng, strength=config.satellite_strength)
    drones = [render_drone_view(world, x, y, drone_size, heading_deg=h, altitude_m=a,
                                distance_m=d, fov_deg=DRONE_FOV_DEG, rng=rng,
                                strength=config.ground_strength, tint=tint)
              for h, a, d in flight_plan(config, drone_size, views, rng)]
    streets = []
    for n_views in street_sets:
        imgs = []
        for _ in range(n_views):
            rgb, lab = render.render_ground(
                world, x, y, drone_size, horizon_fraction=0.4,
                heading_deg=float(rng.uniform(0, 360)), fov_deg=STREET_FOV_DEG,
                camera_height_m=config.camera_height_m, max_distance_m=config.max_distance_m)
            if tint is not None:
                surface = lab != SKY
                rgb[surface] = np.clip(rgb[surface] * tint, 0, 255)
            imgs.append(render.degrade_ground(rgb, lab, rng, strength=config.ground_strength))
        streets.append(imgs)
    return tile, drones, streets


def write_university1652(out_dir: str, num_train_classes: int, num_test_classes: int, *,
                         seed: int = 0, satellite_size=(128, 128), drone_size=(128, 128),
                         views_per_class: int = 4, num_extra_gallery_classes: int | None = None,
                         street_views_per_class: int = 1, config: WorldConfig | None = None,
                         jpeg_quality: int = 90) -> dict:
    """Writes a synthetic University-1652 dataset (see the module docstring for the files).

    Args:
      out_dir: dataset root (created); files of the same names are replaced.
      num_train_classes, num_test_classes: classes (places) per split (>= 0; at most
        9999 classes in all, ids are 4 digits).
      seed: everything is a deterministic function of (seed, sizes, counts per class, config);
        the first n classes of a split do not depend on how many are asked for.
      satellite_size: (S, S) satellite tile pixels (square), covering config.tile_extent_m.
      drone_size: (H, W) drone view pixels (also the street view size).
      views_per_class: drone views per class (>= 1; the real data has 54).
      num_extra_gallery_classes: satellite/drone-only classes added to the test galleries
        (the real data has 250 next to 701); None -> max(1, num_test_classes // 4), and 0
        when num_test_classes is 0.
      street_views_per_class: street views per class in train/street, test/query_street
        and test/gallery_street (gallery ones at other headings).
      config: layouts.WorldConfig (tile extent, photometric strengths, location_tint...).
      jpeg_quality: JPEG quality of all images.
    Returns:
      dict with "layout" ("university1652"), "out_dir", "counts" {folder: images},
      "classes" {"train", "test", "extra_gallery"}, "satellite_size", "drone_size",
      "seconds", "images_per_second" (also saved to synthetic_meta.json).
    """
    n_train = _count("num_train_classes", num_train_classes)
    n_test = _count("num_test_classes", num_test_classes)
    views = _count("views_per_class", views_per_class, 1)
    n_street = _count("street_views_per_class", street_views_per_class)
    if num_extra_gallery_classes is None:
        n_extra = max(1, n_test // 4) if n_test else 0
    else:
        n_extra = _count("num_extra_gallery_classes", num_extra_gallery_classes)
    if n_train + n_test + n_extra > 9999:
        raise _err(f"{n_train + n_test + n_extra} classes do not fit 4-digit ids (max 9999)")
    sat = _size("satellite_size", satellite_size)
    if sat[0] != sat[1]:
        raise _err(f"satellite_size={satellite_size!r} must be square")
    drn = _size("drone_size", drone_size)
    config = config or WorldConfig()
    if not isinstance(config, WorldConfig):
        raise _err(f"config must be a layouts.WorldConfig, got {type(config).__name__}")
    t0 = time.perf_counter()
    perm = np.random.default_rng(_seed(seed, STREAM, 99)).permutation(n_train + n_test + n_extra)
    ids = [f"{int(v) + 1:04d}" for v in perm]
    train_ids, test_ids = ids[:n_train], ids[n_train:n_train + n_test]
    extra_ids = ids[n_train + n_test:]
    width = max(2, len(str(views)))
    drone_names = [f"image-{k + 1:0{width}d}.jpeg" for k in range(views)]
    swidth = max(2, len(str(n_street)))
    street_names = [f"street-{k + 1:0{swidth}d}.jpg" for k in range(n_street)]
    counts = {f: 0 for f in ("train/satellite", "train/drone", "train/street",
                             "test/query_satellite", "test/gallery_satellite",
                             "test/query_drone", "test/gallery_drone",
                             "test/query_street", "test/gallery_street")}

    def put(folder, cid, name, data):
        _atomic_bytes(os.path.join(out_dir, *folder.split("/"), cid, name), data)
        counts[folder] += 1

    q = int(jpeg_quality)
    places = _iter_places(_SPLITS["train"], n_train, seed, config, sat[0], drn)
    for cid, (world, x, y, rng) in zip(train_ids, places):
        tile, drones, (streets,) = _render_class(world, x, y, rng, config, sat[0], drn,
                                                 views, (n_street,))
        put("train/satellite", cid, f"{cid}.jpg", _encode(tile, q))
        for name, img in zip(drone_names, drones):
            put("train/drone", cid, name, _encode(img, q))
        for name, img in zip(street_names, streets):
            put("train/street", cid, name, _encode(img, q))
    places = _iter_places(_SPLITS["test"], n_test + n_extra, seed, config, sat[0], drn)
    for i, (cid, (world, x, y, rng)) in enumerate(zip(test_ids + extra_ids, places)):
        is_test = i < n_test
        tile, drones, (q_streets, g_streets) = _render_class(
            world, x, y, rng, config, sat[0], drn, views, (n_street if is_test else 0, n_street))
        data = _encode(tile, q)
        put("test/gallery_satellite", cid, f"{cid}.jpg", data)
        if is_test:
            put("test/query_satellite", cid, f"{cid}.jpg", data)
        for name, img in zip(drone_names, drones):
            data = _encode(img, q)
            put("test/gallery_drone", cid, name, data)
            if is_test:
                put("test/query_drone", cid, name, data)
        for name, img in zip(street_names, q_streets):
            put("test/query_street", cid, name, _encode(img, q))
        for name, img in zip(street_names, g_streets):
            put("test/gallery_street", cid, name, _encode(img, q))
    secs = time.perf_counter() - t0
    mpp, margin, spacing, region_m = _geometry(config, drn, sat[0])
    info = {"layout": "university1652", "out_dir": os.path.abspath(out_dir),
            "counts": counts,
            "classes": {"train": n_train, "test": n_test, "extra_gallery": n_extra},
            "ids": {"train": sorted(train_ids), "test": sorted(test_ids),
                    "extra_gallery": sorted(extra_ids)},
            "seed": seed, "satellite_size": list(sat), "drone_size": list(drn),
            "street_size": list(drn), "views_per_class": views,
            "street_views_per_class": n_street,
            "drone": {"fov_deg": DRONE_FOV_DEG, "flight_levels_pitch_deg_range_scale":
                      [list(v) for v in FLIGHT_LEVELS]},
            "map": {"metres_per_pixel": mpp, "region_m": region_m, "margin_m": margin,
                    "class_spacing_m": spacing},
            "config": dataclasses.asdict(config), "seconds": round(secs, 3),
            "images_per_second": round(sum(counts.values()) / max(secs, 1e-9), 1),
            "generator": "cvmnet_tf.data.synthetic.university1652"}
    _atomic_bytes(os.path.join(out_dir, "synthetic_meta.json"), json.dumps(info, indent=1).encode())
    return info
