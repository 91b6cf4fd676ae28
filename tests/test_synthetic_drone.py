"""Tests of the synthetic drone views and the synthetic University-1652 layout (numpy only)."""
import json
import math

import numpy as np
import pytest
from PIL import Image

from cvmnet_tf.data.synthetic import SyntheticMap, WorldConfig, cut_tile, generate_map
from cvmnet_tf.data.synthetic.drone import render_drone, render_drone_view
from cvmnet_tf.data.synthetic.buildings import iter_places, render_class
from cvmnet_tf.data.synthetic.writers.university1652 import write_university1652
from cvmnet_tf.data.synthetic.world import BUILDING, GRASS, SKY

# tiny: 60 m tiles, small regions
CFG = WorldConfig(tile_extent_m=60.0, region_m=300.0)


def _world(n=240, mpp=0.5, colour=None, seed=0):
    """Flat map, satellite == facade; uniform `colour` or a smooth random colour field."""
    if colour is None:
        rng = np.random.default_rng(seed)
        small = rng.uniform(0, 255, (n // 16, n // 16, 3)).astype(np.uint8)
        img = np.asarray(Image.fromarray(small).resize((n, n), Image.BICUBIC))
    else:
        img = np.empty((n, n, 3), np.uint8)
        img[:] = colour
    return SyntheticMap(satellite=img.copy(), facade=img.copy(),
                        height=np.zeros((n, n), np.float32),
                        labels=np.full((n, n), GRASS, np.uint8), metres_per_pixel=mpp,
                        origin_easting=0.0, origin_northing=0.0, sun_azimuth_deg=180.0)


def _project(point_enu, heading_deg, alt, dist, fov_deg, size):
    """Independent look-at pinhole: (row, col) float pixel of a point (east, north, up)
    metres relative to the target; the camera looks at the target (origin)."""
    h = math.radians(heading_deg)
    cam = np.array([-dist * math.sin(h), -dist * math.cos(h), alt])
    fwd = -cam / np.linalg.norm(cam)
    right = np.cross(fwd, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, fwd)
    rel = np.asarray(point_enu, float) - cam
    f = (size[1] / 2) / math.tan(math.radians(fov_deg) / 2)
    z = rel @ fwd
    return size[0] / 2 - f * (rel @ up) / z - 0.5, size[1] / 2 + f * (rel @ right) / z - 0.5


@pytest.mark.parametrize("heading, alt, dist, sq", [(0.0, 60.0, 40.0, (150, 90)),
                                                    (30.0, 60.0, 40.0, (150, 90)),
                                                    (237.0, 70.0, 50.0, (95, 140))])
def test_bright_square_lands_where_the_pinhole_says(heading, alt, dist, sq):
    world = _world(n=480, colour=(40, 40, 40))             # the whole view is on the map
    sx, sy = sq[0] + 120, sq[1] + 120
    world.satellite[sy - 3:sy + 3, sx - 3:sx + 3] = 250      # 3 m square centred on (sx-.5, sy-.5)
    size = (96, 112)
    rgb, lab = render_drone(world, 240.0, 240.0, size, heading_deg=heading, altitude_m=alt,
                            distance_m=dist, fov_deg=60.0, haze_distance_m=1e12)
    assert (lab == GRASS).all()
    w = np.clip((rgb[..., 0] - 40) / 210, 0, 1)
    assert w.sum() > 2 and (rgb[w == 0] == 40).all()
    rows, cols = np.mgrid[:size[0], :size[1]]
    got = ((w * rows).sum() / w.sum(), (w * cols).sum() / w.sum())
    east, north = (sx - 0.5 - 240.0) * 0.5, -(sy - 0.5 - 240.0) * 0.5
    want = _project((east, north, 0.0), heading, alt, dist, 60.0, size)
    assert abs(got[0] - want[0]) < 0.35 and abs(got[1] - want[1]) < 0.35, (got, want)


def test_nadir_view_is_the_tile():
    """Straight down, footprint 2 * alt * tan(fov / 2) = tile extent: the view is the
    north-up tile (heading 0) or the tile with east up (heading 90)."""
    world = _world()
    alt = 20.0 / math.tan(math.radians(30))                   # 40 m footprint
    tile = cut_tile(world, 120.0, 120.0, extent_m=40.0, size=64).astype(float)
    for heading, expect in ((0.0, tile), (90.0, np.rot90(tile, 1))):
        rgb, lab = render_drone(world, 120.0, 120.0, (64, 64), heading_deg=heading,
                                altitude_m=alt, distance_m=0.0, fov_deg=60.0,
                                haze_distance_m=1e12)
        assert np.abs(rgb - expect).mean() < 1.5
        assert np.abs(rgb - np.rot90(tile, 2)).mean() > 10


def test_sky_above_the_horizon():
    world = _world()
    size, alt, dist = (64, 48), 5.0, 500.0
    _, lab = render_drone(world, 120.0, 120.0, size, heading_deg=10.0, altitude_m=alt,
                          distance_m=dist, fov_deg=60.0)
    f = 24 / math.tan(math.radians(30))
    v = np.arange(64) + 0.5 - 32
    sky_rows = v < -f * alt / dist            # ray elevation >= 0
    assert 20 < sky_rows.sum() < 40
    assert ((lab == SKY).all(1) == sky_rows).all() and ((lab == SKY).any(1) == sky_rows).all()


def test_building_roof_and_wall():
    """A 20 m tall 10 x 10 m block at the target, seen from the south: the roof centre
    (z = 20 m) shows the satellite roof colour, the south wall the darkened facade."""
    world = _world(colour=(100, 100, 100))
    blk = (slice(110, 130), slice(110, 130))                 # 10 m, centred on (119.5, 119.5)
    world.height[blk] = 20.0
    world.labels[blk] = BUILDING
    world.satellite[blk] = (200, 0, 0)
    world.facade[blk] = (0, 0, 200)
    size = (96, 96)
    rgb, lab = render_drone(world, 119.5, 119.5, size, heading_deg=0.0, altitude_m=60.0,
                            distance_m=60.0, fov_deg=60.0, haze_distance_m=1e12)
    r, c = (int(round(v)) for v in _project((0, 0, 20.0), 0.0, 60.0, 60.0, 60.0, size))
    np.testing.assert_allclose(rgb[r, c], (200, 0, 0), atol=1)
    r, c = (int(round(v)) for v in _project((0, -5.0, 10.0), 0.0, 60.0, 60.0, 60.0, size))
    np.testing.assert_allclose(rgb[r, c], (0, 0, 200 * 0.78), atol=1)
    assert lab[r, c] == BUILDING
    # the flat render (no height cue) shows the footprint instead: red at z = 0
    flat, _ = render_drone(world, 119.5, 119.5, size, heading_deg=0.0, altitude_m=60.0,
                           distance_m=60.0, fov_deg=60.0, height_steps=0, haze_distance_m=1e12)
    r0, c0 = (int(round(v)) for v in _project((0, 0, 0.0), 0.0, 60.0, 60.0, 60.0, size))
    np.testing.assert_allclose(flat[r0, c0], (200, 0, 0), atol=1)
    assert (flat != (0, 0, 156)).any(-1).all()               # no walls


def test_view_jitter_and_determinism():
    world = generate_map(2, (160, 160), 0.5)
    kw = dict(heading_deg=40.0, altitude_m=30.0, distance_m=25.0)
    a = render_drone_view(world, 80, 80, (32, 40), rng=np.random.default_rng(1), **kw)
    b = render_drone_view(world, 80, 80, (32, 40), rng=np.random.default_rng(1), **kw)
    c = render_drone_view(world, 80, 80, (32, 40), rng=np.random.default_rng(2), **kw)
    assert a.shape == (32, 40, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) and np.abs(a.astype(float) - c).mean() > 2
    clean = render_drone_view(world, 80, 80, (32, 40), **kw).astype(float)
    rgb, _ = render_drone(world, 80, 80, (32, 40), **kw)
    assert np.abs(clean - rgb).max() <= 0.5
    for kwargs, word in (({"altitude_m": 0.0}, "altitude_m"), ({"distance_m": -1.0}, "distance_m"),
                         ({"fov_deg": 180.0}, "fov_deg")):
        with pytest.raises(ValueError, match=word):
            render_drone_view(world, 80, 80, (8, 8), **dict(kw, **kwargs))


def _ids(path):
    return sorted(p.name for p in path.iterdir())


def test_layout(tmp_path):
    info = write_university1652(str(tmp_path), 3, 2, seed=4, satellite_size=(32, 32),
                                drone_size=(24, 40), views_per_class=3, config=CFG)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".cvmnet_synthetic", "synthetic_meta.json", "test", "train"]
    assert _ids(tmp_path / "train") == ["drone", "satellite", "street"]
    assert _ids(tmp_path / "test") == sorted(["query_drone", "gallery_satellite", "query_satellite",
                                               "gallery_drone", "query_street", "gallery_street"])
    train = _ids(tmp_path / "train" / "satellite")
    test = _ids(tmp_path / "test" / "query_satellite")
    gallery = _ids(tmp_path / "test" / "gallery_satellite")
    assert len(train) == 3 and len(test) == 2 and len(gallery) == 3       # 1 extra class
    extra = sorted(set(gallery) - set(test))
    assert set(test) < set(gallery) and not set(train) & set(gallery)
    assert all(len(i) == 4 and i.isdigit() for i in train + gallery)
    assert sorted(train + gallery) == [f"{k:04d}" for k in range(1, 7)]
    for split, folder, ids, names in (
            ("train", "satellite", train, None), ("train", "drone", train, "drone"),
            ("train", "street", train, "street"), ("test", "query_satellite", test, None),
            ("test", "gallery_satellite", gallery, None), ("test", "query_drone", test, "drone"),
            ("test", "gallery_drone", gallery, "drone"), ("test", "query_street", test, "street"),
            ("test", "gallery_street", gallery, "street")):
        assert _ids(tmp_path / split / folder) == ids, folder
        for cid in ids:
            files = _ids(tmp_path / split / folder / cid)
            if names is None:
                assert files == [f"{cid}.jpg"]
                shape = (32, 32, 3)
            elif names == "drone":
                assert files == ["image-01.jpeg", "image-02.jpeg", "image-03.jpeg"]
                shape = (24, 40, 3)
            else:
                assert files == ["street-01.jpg"]
                shape = (24, 40, 3)
            for f in files:
                with Image.open(tmp_path / split / folder / cid / f) as im:
                    assert np.asarray(im.convert("RGB")).shape == shape
    for cid in test:          # as in the real data, query images reappear in the galleries
        for f in ("image-01.jpeg", "image-03.jpeg"):
            assert ((tmp_path / "test/query_drone" / cid / f).read_bytes()
                    == (tmp_path / "test/gallery_drone" / cid / f).read_bytes())
        assert ((tmp_path / "test/query_street" / cid / "street-01.jpg").read_bytes()
                != (tmp_path / "test/gallery_street" / cid / "street-01.jpg").read_bytes())
    assert info["counts"] == {"train/satellite": 3, "train/drone": 9, "train/street": 3,
                              "test/query_satellite": 2, "test/gallery_satellite": 3,
                              "test/query_drone": 6, "test/gallery_drone": 9,
                              "test/query_street": 2, "test/gallery_street": 3}
    assert info["classes"] == {"train": 3, "test": 2, "extra_gallery": 1}
    assert info["ids"]["extra_gallery"] == extra and info["layout"] == "university1652"
    meta = json.loads((tmp_path / "synthetic_meta.json").read_text())
    assert meta["counts"] == info["counts"] and meta["drone_size"] == [24, 40]
    assert not list(tmp_path.rglob("*.tmp-*"))
    # distinct places: tiles of different classes differ
    tiles = [np.asarray(Image.open(tmp_path / "train/satellite" / i / f"{i}.jpg"), float)
             for i in train]
    assert min(np.abs(a - b).mean() for k, a in enumerate(tiles) for b in tiles[k + 1:]) > 10


def test_deterministic(tmp_path):
    kw = dict(satellite_size=(16, 16), drone_size=(16, 16), views_per_class=2, config=CFG,
              num_extra_gallery_classes=0)
    for d, s in (("a", 1), ("b", 1), ("c", 2)):
        write_university1652(str(tmp_path / d), 1, 1, seed=s, **kw)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.jp*g"))
    # train: 1 satellite + 2 drone + 1 street; test: 2 satellite + 2 * 2 drone + 2 street
    assert len(files) == 4 + 8
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
    rel = "train/drone/{0}/image-01.jpeg"
    ida = _ids(tmp_path / "a/train/drone")[0]
    idc = _ids(tmp_path / "c/train/drone")[0]
    assert ((tmp_path / "a" / rel.format(ida)).read_bytes()
            != (tmp_path / "c" / rel.format(idc)).read_bytes())


def test_drone_views_resemble_their_own_tile():
    """A hand-crafted matcher (joint histograms of the per-channel standardised colours,
    which cancel the views' brightness / contrast jitter; L1) ranks a drone view's own
    tile far above chance (the views share no per-place label)."""
    cfg = WorldConfig(tile_extent_m=60.0, region_m=300.0)
    places = list(iter_places(0, 12, 3, cfg, 48, (48, 48)))
    tiles, views = [], []
    for world, x, y, rng in places:
        tile, drones, _ = render_class(world, x, y, rng, cfg, 48, (48, 48), 4, ())
        tiles.append(tile)
        views.append(drones)

    def hist(img):
        f = img.reshape(-1, 3).astype(float)
        f = (f - f.mean(0)) / (f.std(0) + 1e-6)
        q = np.clip(((f + 2) / 4 * 4).astype(int), 0, 3)             # 4 bins over +-2 std
        return np.bincount(q[:, 0] * 16 + q[:, 1] * 4 + q[:, 2], minlength=64) / len(q)

    T = np.stack([hist(t) for t in tiles])
    dist = np.array([[np.abs(hist(v) - T).sum(1) for v in vs] for vs in views])  # (C, V, C)
    n = len(tiles)
    own = dist[np.arange(n), :, np.arange(n)]
    other = (dist.sum(2) - own) / (n - 1)
    assert own.mean() < 0.65 * other.mean(), (own.mean(), other.mean())   # measured 0.49
    top1 = (dist.argmin(2) == np.arange(n)[:, None]).mean()
    assert top1 > 0.6, top1                                    # chance 1/12; measured 0.94


@pytest.mark.parametrize("kwargs, word", [
    ({"satellite_size": (32, 16)}, "satellite_size"),
    ({"drone_size": (4, 4)}, "drone_size"),
    ({"views_per_class": 0}, "views_per_class"),
    ({"num_train_classes": 9999}, "4-digit"),
    ({"num_test_classes": -1}, "num_test_classes"),
])
def test_bad_arguments(tmp_path, kwargs, word):
    args = dict(out_dir=str(tmp_path), num_train_classes=1, num_test_classes=1)
    args.update(kwargs)
    with pytest.raises(ValueError, match=word):
        write_university1652(**args)
