"""Pairs of the synthetic world: a satellite tile and the ground view from its centre.

:func:`iter_pairs` yields them region after region (a region is one generated map with up
to ``WorldConfig.pairs_per_region`` camera positions); pair i of region r is a function of
(seed, stream, split, r, i) and the arguments only, which is what lets
:mod:`.runner` render regions in several processes with byte-identical results.
"""
from __future__ import annotations

import numpy as np

from cvmnet_tf.data.synthetic import render
from cvmnet_tf.data.synthetic.config import Pair, WorldConfig, region_origin, seed_sequence
from cvmnet_tf.data.synthetic.world import WorldStyle, generate_map, sample_locations

__all__ = ["region_world", "iter_pairs", "make_pair"]


def region_world(seed, stream, split, region, s, config: WorldConfig, style):
    """(map, camera positions (n, 2) px) of one region: a function of its arguments only."""
    mpp = config.map_resolution(s)
    side = int(round(config.region_m / mpp))
    world = generate_map((seed, stream, split, region), (side, side), mpp,
                         region_origin(stream, split, region), style)
    rng = np.random.default_rng(seed_sequence(seed, stream, split, region, 1 << 20))
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


def make_pair(world, x, y, rng, s, ground_size, config, view, horizon_fraction,
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
