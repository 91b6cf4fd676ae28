"""One geo-referenced synthetic map with ground panoramas at known positions (the
localization experiment, paper section 5.5, at toy scale): the input of ``cvmnet-localize``."""
from __future__ import annotations

import os

import numpy as np

from cvmnet_tf.data.synthetic import render
from cvmnet_tf.data.synthetic.config import STREAMS, WorldConfig, seed_sequence
from cvmnet_tf.data.synthetic.files import check_size, claim_output_dir, save_image, save_json, save_text
from cvmnet_tf.data.synthetic.world import generate_map, sample_locations

__all__ = ["write_map"]


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
      out_dir: output folder: a missing or empty folder, or one the generator wrote.
      seed: map seed.
      size_m: (north-south, east-west) extent in metres.
      metres_per_pixel: map resolution.
      num_panoramas: query panoramas (fewer if the map is too small for min_spacing_m).
      ground_size: (H, W) panorama pixels.
      min_spacing_m, margin_m: spacing of query positions and distance to the border.
      config: WorldConfig: the map's palette and sun, the camera, the ground views' sun and
        photometric jitter, the tile extent recorded in map.json (default WorldConfig(), the
        world ``--synthetic`` trains on).
      origin: (easting, northing) metres of the north-west corner.
    Returns:
      dict: the bounds plus "panoramas": list of (path, easting, northing).
    """
    config = config or WorldConfig()
    grd = check_size("write_map", "ground_size", tuple(ground_size))
    if len(size_m) != 2 or min(size_m) <= 2 * margin_m:
        raise ValueError(f"write_map: size_m={size_m} must be (NS, EW) metres > 2*margin_m")
    shape = (int(round(size_m[0] / metres_per_pixel)), int(round(size_m[1] / metres_per_pixel)))
    claim_output_dir(out_dir)
    world = generate_map((seed, STREAMS["map"]), shape, metres_per_pixel, origin, **config.map_options())
    rng = np.random.default_rng(seed_sequence(seed, STREAMS["map"], 1))
    pts = sample_locations(world, int(num_panoramas), rng, min_spacing_m=min_spacing_m,
                           margin_m=margin_m)
    save_image(os.path.join(out_dir, "map.png"), world.satellite)
    rows, listing = ["path,easting,northing,x_px,y_px"], []
    for i, (x, y) in enumerate(pts):
        prng = np.random.default_rng(seed_sequence(seed, STREAMS["map"], 2, i))
        rgb, lab = render.render_ground(world, x, y, grd, camera_height_m=config.camera_height_m,
                                        max_distance_m=config.max_distance_m,
                                        sun_azimuth_deg=config.ground_sun_azimuth(prng))
        img = render.degrade_ground(rgb, lab, prng, strength=config.ground_strength)
        rel = f"panoramas/{i:05d}.jpg"
        save_image(os.path.join(out_dir, rel), img, jpeg_quality)
        e, n = world.pixel_to_utm(x, y)
        rows.append(f"{rel},{e:.3f},{n:.3f},{x:.3f},{y:.3f}")
        listing.append((rel, float(e), float(n)))
    save_text(os.path.join(out_dir, "panoramas.csv"), rows)
    meta = dict(world.bounds(), seed=seed, ground_size=list(grd), tile_extent_m=float(config.tile_extent_m),
                camera_height_m=config.camera_height_m, num_panoramas=len(listing))
    save_json(os.path.join(out_dir, "map.json"), meta)
    return dict(meta, panoramas=listing)
