"""Places of the synthetic world seen as University-1652 buildings: where a class lies, how
the drone circles it, and its images (a satellite tile, oblique drone views, street views).

Drone views (:mod:`.drone`) circle the place: view k looks at the class's target point
from heading phase + 360 k / views_per_class (+-5 degrees jitter), alternating between two
flight levels derived from the tile extent so that the view covers about one tile: pitch
65 degrees at slant range 1.25 x (tile extent / (2 tan(fov / 2))) and pitch 55 degrees at
1.0 x that range (altitude and distance jittered +-5 %). Satellite tiles are
``render.cut_tile`` at ``config.tile_extent_m``; street views are 90-degree ground crops
(``render.render_ground``) from the target point at random headings, lit as
``config.ground_sun`` says. The views of a place share nothing but the place (no colour
cast or other per-place label).
"""
from __future__ import annotations

import math

import numpy as np

from cvmnet_tf.data.synthetic import render
from cvmnet_tf.data.synthetic.config import STREAMS, WorldConfig, region_origin, seed_sequence
from cvmnet_tf.data.synthetic.drone import footprint_radius_m, render_drone_view
from cvmnet_tf.data.synthetic.world import generate_map, sample_locations

__all__ = ["STREAM", "SPLITS", "FLIGHT_LEVELS", "DRONE_FOV_DEG", "STREET_FOV_DEG", "flight_plan", "place_geometry",
           "iter_places", "render_class"]

STREAM = STREAMS["university1652"]   # seed stream of this layout
SPLITS = {"train": 0, "test": 1}
# (pitch below horizontal in degrees, slant range as a multiple of the base range)
FLIGHT_LEVELS = ((65.0, 1.25), (55.0, 1.0))
DRONE_FOV_DEG = 60.0
STREET_FOV_DEG = 90.0
_LOCATIONS_PER_REGION = 32      # fixed, so that the first n classes do not depend on n


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


def place_geometry(config: WorldConfig, drone_size, satellite_side):
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


def iter_places(split: int, n: int, seed: int, config: WorldConfig, sat_side, drone_size):
    """Yields n (world, x, y, rng) places of one split (regions generated lazily)."""
    mpp, margin, spacing, region_m = place_geometry(config, drone_size, sat_side)
    side = int(round(region_m / mpp))
    produced, region = 0, 0
    while produced < n:
        world = generate_map((seed, STREAM, split, region), (side, side), mpp,
                             region_origin(STREAM, split, region), **config.map_options())
        rng = np.random.default_rng(seed_sequence(seed, STREAM, split, region, 1 << 20))
        pts = sample_locations(world, _LOCATIONS_PER_REGION, rng, min_spacing_m=spacing,
                               margin_m=margin)
        for i, (x, y) in enumerate(pts[:n - produced]):
            yield world, float(x), float(y), np.random.default_rng(
                seed_sequence(seed, STREAM, split, region, i))
        produced += min(len(pts), n - produced)
        region += 1
        if region > 10 * n + 10:
            raise RuntimeError("write_university1652: could not place classes; lower "
                               "config.tile_extent_m or min_spacing_m")


def render_class(world, x, y, rng, config, sat_side, drone_size, views, street_sets):
    """Images of one class: (tile, [drone views], [[street views] per set])."""
    tile = render.cut_tile(world, x, y, extent_m=config.tile_extent_m, size=sat_side)
    tile = render.degrade_satellite(tile, rng, strength=config.satellite_strength)
    drones = [render_drone_view(world, x, y, drone_size, heading_deg=h, altitude_m=a,
                                distance_m=d, fov_deg=DRONE_FOV_DEG, rng=rng,
                                strength=config.ground_strength)
              for h, a, d in flight_plan(config, drone_size, views, rng)]
    streets = []
    for n_views in street_sets:
        imgs = []
        for _ in range(n_views):
            rgb, lab = render.render_ground(
                world, x, y, drone_size, horizon_fraction=0.4,
                heading_deg=float(rng.uniform(0, 360)), fov_deg=STREET_FOV_DEG,
                camera_height_m=config.camera_height_m, max_distance_m=config.max_distance_m,
                sun_azimuth_deg=config.ground_sun_azimuth(rng))
            imgs.append(render.degrade_ground(rgb, lab, rng, strength=config.ground_strength))
        streets.append(imgs)
    return tile, drones, streets
