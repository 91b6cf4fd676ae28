"""World v2 knobs: shared surface palette, per-view sun of the ground views, sun azimuth
range, tile offset; the tile's class labels."""
import math

import numpy as np
import pytest

from cvmnet_tf.data.synthetic import WorldConfig, generate_map, iter_pairs, render_ground
from cvmnet_tf.data.synthetic.render import cut_label_tile, cut_tile
from cvmnet_tf.data.synthetic.world import BUILDING, GRASS, ROAD, TREE

PALETTE = {GRASS: (96, 118, 72), ROAD: (112, 112, 116)}   # the satellite palette (world._SAT)


def test_palettes_change_colours_only():
    a = generate_map(5, (240, 240), 0.5, ground_palette="street")
    b = generate_map(5, (240, 240), 0.5, ground_palette="satellite")
    for name in ("labels", "height", "satellite"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.sun_azimuth_deg == b.sun_azimuth_deg
    for c in (GRASS, ROAD):
        m = b.labels == c
        shared, street = (x[m].astype(float).mean(0) for x in (b.facade, a.facade))
        # the satellite palette entry under mean-one shading and zero-mean grain
        assert np.abs(shared - PALETTE[c]).max() < 4, (c, shared)
        assert np.abs(street - PALETTE[c]).max() > 15, (c, street)
    with pytest.raises(ValueError, match="ground_palette"):
        generate_map(5, (64, 64), 0.5, ground_palette="night")


def test_sun_azimuth_range():
    suns = [generate_map(s, (64, 64), 1.0, sun_azimuth_range_deg=(0, 360)).sun_azimuth_deg for s in range(40)]
    assert all(0 <= v < 360 for v in suns) and max(suns) > 300 and min(suns) < 60
    suns = [generate_map(s, (64, 64), 1.0).sun_azimuth_deg for s in range(20)]
    assert all(120 <= v <= 240 for v in suns)      # generate_map's own default: southern skies


def test_panorama_sun_lights_the_facades():
    world = generate_map(3, (400, 400), 0.5)
    x = y = 200.0
    rgb0, lab = render_ground(world, x, y, (32, 128))
    rgb_same, _ = render_ground(world, x, y, (32, 128), sun_azimuth_deg=world.sun_azimuth_deg)
    assert np.array_equal(rgb0, rgb_same)
    objects = np.isin(lab, (BUILDING, TREE))
    assert (lab == BUILDING).sum() > 50
    other, _ = render_ground(world, x, y, (32, 128), sun_azimuth_deg=world.sun_azimuth_deg + 180)
    assert np.array_equal(rgb0[~objects], other[~objects])          # only walls and crowns change
    assert np.abs(rgb0[objects] - other[objects]).mean() > 5


def test_per_view_sun_is_drawn_per_pair():
    kw = dict(satellite_size=(64, 64), ground_size=(32, 128))
    a = list(iter_pairs(6, seed=2, config=WorldConfig(ground_sun="map"), **kw))
    b = list(iter_pairs(6, seed=2, config=WorldConfig(ground_sun="per_view"), **kw))
    assert [(p.easting, p.northing) for p in a] == [(p.easting, p.northing) for p in b]
    assert any(not np.array_equal(p.ground, q.ground) for p, q in zip(a, b))
    for kwargs, word in (({"ground_sun": "noon"}, "ground_sun"), ({"ground_palette": "x"}, "ground_palette"),
                         ({"sun_azimuth_range_deg": (10, 5)}, "sun_azimuth_range_deg"),
                         ({"tile_offset_m": -1.0}, "tile_offset_m")):
        with pytest.raises(ValueError, match=word):
            WorldConfig(**kwargs)


def test_tile_offset_moves_the_tile_not_the_camera():
    from cvmnet_tf.data.synthetic.pairs import region_world, tile_centre

    cfg = WorldConfig(tile_offset_m=8.0)
    world, pts = region_world(4, 1, 0, 0, 64, cfg, None)
    rng = np.random.default_rng(0)
    r = np.array([math.hypot(*(np.subtract(tile_centre(world, 100.0, 100.0, cfg, rng), 100.0)))
                  for _ in range(2000)]) * world.metres_per_pixel
    assert r.max() <= 8.0 + 1e-9
    # uniform in the disc: mean radius 2R/3, standard deviation R / sqrt(18) per draw
    assert abs(r.mean() - 16 / 3) < 4 * 8.0 / math.sqrt(18) / math.sqrt(2000), r.mean()
    assert tile_centre(world, 10.0, 20.0, WorldConfig(), rng) == (10.0, 20.0)
    # the pair's position stays the camera's; its tile is not the camera-centred one
    pairs = list(iter_pairs(3, seed=4, satellite_size=(64, 64), ground_size=(16, 64), config=cfg))
    for p, (x, y) in zip(pairs, pts):
        assert (p.easting, p.northing) == tuple(float(v) for v in world.pixel_to_utm(x, y))
        centred = cut_tile(world, x, y, extent_m=cfg.tile_extent_m, size=64).astype(float)
        assert np.abs(p.satellite - centred).mean() > 5


def test_label_tile_matches_the_tile():
    world = generate_map(8, (300, 300), 0.5)
    for rot in (0.0, 30.0):
        lab = cut_label_tile(world, 150, 150, extent_m=60.0, size=120, rotation_deg=rot)
        tile = cut_tile(world, 150, 150, extent_m=60.0, size=120, rotation_deg=rot).astype(float)
        assert lab.shape == (120, 120)
        grass = tile[lab == GRASS].mean(0)
        roofs = tile[lab == BUILDING].mean(0) if (lab == BUILDING).any() else None
        assert np.abs(grass - PALETTE[GRASS]).max() < 25, (rot, grass)
        if roofs is not None:
            assert np.abs(roofs - grass).max() > 20
    assert np.array_equal(cut_label_tile(world, 149.5, 149.5, extent_m=60.0, size=120),  # pixel-aligned box
                          world.labels[90:210, 90:210])
