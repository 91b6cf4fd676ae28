"""Pairs of the synthetic world: a satellite tile and the ground view from its centre.

:func:`iter_pairs` yields them region after region (a region is one generated map with up
to ``WorldConfig.pairs_per_region`` camera positions); pair i of region r is a function of
(seed, stream, split, r, i) and the arguments only, which is what lets
:mod:`.runner` render regions in several processes with byte-identical results.
"""
from __future__ import annotations

import math

import numpy as np

from cvmnet_tf.data.synthetic import render
from cvmnet_tf.data.synthetic.config import Pair, WorldConfig, region_origin, seed_sequence
from cvmnet_tf.data.synthetic.world import WorldStyle, generate_map, sample_locations

__all__ = ["region_world", "iter_pairs", "make_pair", "tile_centre"]


def region_world(seed, stream, split, region, s, config: WorldConfig, style):
    """(map, camera positions (n, 2) px) of one region: a function of its arguments only."""
    mpp = config.map_resolution(s)
    side = int(round(config.region_m / mpp))
    world = generate_map((seed, stream, split, region), (side, side), mpp,
                         region_origin(stream, split, region), style, **config.map_options())
    rng = np.random.default_rng(seed_sequence(seed, stream, split, region, 1 << 20))
    # always place pairs_per_region positions, so that the first n pairs do not depend
    # on how many are asked for
    pts = sample_locations(world, config.pairs_per_region, rng,
                           min_spacing_m=config.min_spacing_m,
                           margin_m=config.tile_extent_m * 0.6 + config.tile_offset_m)
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
      with_labels: also return the class labels of the ground view (``ground_labels``) and
        of the tile (``satellite_labels``, :func:`render.cut_label_tile`).
    """
    if view not in ("panorama", "crop"):
        raise ValueError(f"iter_pairs: view={view!r} must be 'panorama' or 'crop'")
    s = render.square_side(satellite_size, "iter_pairs")
    produced, region = 0, 0
    while produced < num:
        world, pts = region_world(seed, stream, split, region, s, config, style)
        pts = pts[:num - produced]
        for i, (x, y) in enumerate(pts):
            prng = np.random.default_rng(seed_sequence(seed, stream, split, region, i))
            yield make_pair(world, x, y, prng, s, tuple(ground_size), config, view,
                            horizon_fraction, north_column_fraction, fov_deg, with_labels)
        produced += len(pts)
        region += 1
        if region > 10 * num + 10:
            raise RuntimeError("iter_pairs: could not place camera positions; lower "
                               "min_spacing_m or tile_extent_m")


def tile_centre(world, x, y, config: WorldConfig, rng):
    """Map pixel of the tile centre of a camera at map pixel (x, y): the camera itself, or for
    ``tile_offset_m`` > 0 a point uniform in the disc of that radius (metres) around it."""
    r_max = float(config.tile_offset_m)
    if r_max <= 0:
        return x, y
    r = r_max * math.sqrt(float(rng.uniform())) / world.metres_per_pixel
    a = float(rng.uniform(0.0, 2 * math.pi))
    return x + r * math.cos(a), y + r * math.sin(a)


def make_pair(world, x, y, rng, s, ground_size, config, view, horizon_fraction,
              north_frac, fov_deg, with_labels):
    """One :class:`Pair` of a camera at map pixel (x, y); every random draw comes from ``rng``
    (the ground view's sun, the tile offset, a crop's heading, the photometric jitter)."""
    heading = None
    sun = config.ground_sun_azimuth(rng)
    tx, ty = tile_centre(world, x, y, config, rng)
    geometry = dict(horizon_fraction=horizon_fraction, camera_height_m=config.camera_height_m,
                    max_distance_m=config.max_distance_m, sun_azimuth_deg=sun)
    if view == "crop":
        heading = float(rng.uniform(0, 360))
        rgb, lab = render.render_ground(world, x, y, ground_size, heading_deg=heading, fov_deg=fov_deg,
                                        **geometry)
    else:
        rgb, lab = render.render_ground(world, x, y, ground_size, north_column_fraction=north_frac, **geometry)
    rotation = heading or 0.0
    tile = render.cut_tile(world, tx, ty, extent_m=config.tile_extent_m, size=s, rotation_deg=rotation)
    ground = render.degrade_ground(rgb, lab, rng, strength=config.ground_strength)
    tile = render.degrade_satellite(tile, rng, strength=config.satellite_strength)
    e, n = world.pixel_to_utm(x, y)
    sat_lab = None
    if with_labels:
        sat_lab = render.cut_label_tile(world, tx, ty, extent_m=config.tile_extent_m, size=s, rotation_deg=rotation)
    return Pair(tile, ground, float(e), float(n), heading, lab if with_labels else None, sat_lab)
