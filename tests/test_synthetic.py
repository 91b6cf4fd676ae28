"""Tests of the synthetic cross-view world (numpy / pillow / scipy only, no TensorFlow)."""
import csv
import json
import math

import numpy as np
import pytest
import scipy.io
from PIL import Image

from cvmnet_tf.data.synthetic import (SyntheticMap, WorldConfig, cut_tile, generate_map,
                                      iter_pairs, polar_warp, render_ground, view_angles,
                                      write_dataset, write_map)
from cvmnet_tf.data.synthetic.world import BUILDING, GRASS, SKY

# small and fast: 64 px tiles over 100 m, 300 m regions
CFG = WorldConfig(region_m=300.0, pairs_per_region=40, min_spacing_m=20.0)


def _img(path):
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def test_cvusa_layout(tmp_path):
    info = write_dataset(str(tmp_path), "cvusa", num_train=5, num_val=3, seed=1,
                         satellite_size=(64, 64), ground_size=(32, 128), config=CFG)
    assert info["counts"] == {"train": 5, "val": 3}
    seen = []
    for fname, n in (("train-19zl.csv", 5), ("val-19zl.csv", 3)):
        with open(tmp_path / "splits" / fname) as f:
            rows = list(csv.reader(f))
        assert len(rows) == n
        for sat, grd, ann in rows:
            pid = sat[len("bingmap/19/"):-len(".jpg")]
            assert len(pid) == 7 and pid.isdigit()
            assert sat == f"bingmap/19/{pid}.jpg"
            assert grd == f"streetview/panos/{pid}.jpg"
            assert ann == f"streetview/annotations/{pid}.png"
            assert _img(tmp_path / sat).shape == (64, 64, 3)
            assert _img(tmp_path / grd).shape == (32, 128, 3)
            seen.append(pid)
    assert len(set(seen)) == 8          # ids unique across splits
    assert not list(tmp_path.rglob("*.tmp-*"))


def test_cvact_layout(tmp_path):
    write_dataset(str(tmp_path), "cvact", num_train=6, num_val=3, num_test=2, seed=2,
                  satellite_size=(64, 64), ground_size=(64, 128), config=CFG)
    mat = scipy.io.loadmat(str(tmp_path / "ACT_data.mat"))
    ids = [str(s) for s in mat["panoIds"]]
    assert len(ids) == 11 and all(len(s) == 22 for s in ids) and len(set(ids)) == 11
    utm = mat["utm"]
    assert utm.shape == (11, 2) and utm.dtype == np.float64
    train = mat["trainSet"]["trainInd"][0][0]
    val = mat["valSet"]["valInd"][0][0]
    val_all = mat["valSetAll"]["valInd"][0][0]
    assert train.shape == (6, 1) and val.shape == (3, 1) and val_all.shape == (5, 1)
    tr, va, al = (set(a.ravel().astype(int)) for a in (train, val, val_all))
    assert tr.isdisjoint(al) and va <= al and (tr | al) == set(range(1, 12))  # 1-based
    # distinct places: every pair farther than CVACT's 5 m geo-recall threshold
    d = np.sqrt(((utm[:, None] - utm[None]) ** 2).sum(-1)) + np.eye(11) * 1e9
    assert d.min() > 5
    for pid in ids:
        assert _img(tmp_path / "streetview" / f"{pid}_grdView.jpg").shape == (64, 128, 3)
        assert _img(tmp_path / "satview_polish" / f"{pid}_satView_polish.jpg").shape == (64, 64, 3)
    # OriCNN geometry: full sphere over 832x1664-style images, central half = +-45 degrees
    elev, _ = view_angles((832, 1664), horizon_fraction=0.5)
    np.testing.assert_allclose(math.degrees(elev[0]), 90 - 90 / 832, atol=1e-9)
    np.testing.assert_allclose(math.degrees(elev[208]), 45 - 90 / 832, atol=1e-9)
    np.testing.assert_allclose(math.degrees(elev[623]), -45 + 90 / 832, atol=1e-9)


def test_vohays_layout(tmp_path):
    write_dataset(str(tmp_path), "vohays", num_train=10, num_val=3, seed=3,
                  satellite_size=(48, 48), ground_size=(40, 40), config=CFG)
    for stem, n in (("train", 10), ("test_denver", 3)):
        sv = (tmp_path / f"{stem}.streetview.txt").read_text().splitlines()
        ov = (tmp_path / f"{stem}.overhead.txt").read_text().splitlines()
        assert len(sv) == len(ov) == n
        for a, b in zip(sv, ov):
            (gp, gl), (sp, sl) = a.split(" "), b.split(" ")
            assert gl == sl                              # line i pairs with line i
            city = gp.split("/")[0]
            assert gp.startswith(f"{city}/streetview/") and sp.startswith(f"{city}/overhead/")
            assert (city == "denver") == (stem != "train")
            assert _img(tmp_path / gp).shape == (40, 40, 3)
            assert _img(tmp_path / sp).shape == (48, 48, 3)
    pairs = (tmp_path / "test_pairs.txt").read_text().split()
    assert len(pairs) == 6 and pairs[0].startswith("denver/streetview/")


def test_loaders_read_synthetic(tmp_path):
    """The real loaders (cvmnet_tf.data, written independently) accept the layouts."""
    data = pytest.importorskip("cvmnet_tf.data.cvact")
    from cvmnet_tf.data import cvusa, vohays
    write_dataset(str(tmp_path / "u"), "cvusa", 3, 2, satellite_size=(32, 32),
                  ground_size=(16, 64), config=CFG)
    assert len(cvusa.load_cvusa_split(str(tmp_path / "u"), "val").ground_paths) == 2
    write_dataset(str(tmp_path / "a"), "cvact", 3, 2, num_test=1, satellite_size=(32, 32),
                  ground_size=(32, 64), config=CFG)
    s = data.load_cvact_split(str(tmp_path / "a"), "test")
    assert len(s.ground_paths) == 3 and s.utm.shape == (3, 2)
    write_dataset(str(tmp_path / "v"), "vohays", 8, 2, satellite_size=(32, 32),
                  ground_size=(32, 32), config=CFG)
    assert len(vohays.load_vohays_split(str(tmp_path / "v"), "test").ground_paths) == 2


def test_deterministic(tmp_path):
    a = list(iter_pairs(4, seed=7, satellite_size=(48, 48), ground_size=(16, 64), config=CFG))
    b = list(iter_pairs(4, seed=7, satellite_size=(48, 48), ground_size=(16, 64), config=CFG))
    c = list(iter_pairs(4, seed=8, satellite_size=(48, 48), ground_size=(16, 64), config=CFG))
    for p, q, r in zip(a, b, c):
        assert np.array_equal(p.satellite, q.satellite) and np.array_equal(p.ground, q.ground)
        assert (p.easting, p.northing) == (q.easting, q.northing)
        assert not np.array_equal(p.ground, r.ground)
    for d in ("x", "y"):
        write_dataset(str(tmp_path / d), "cvusa", 2, 1, seed=5, satellite_size=(32, 32),
                      ground_size=(16, 64), config=CFG)
    for rel in ("bingmap/19/0000001.jpg", "streetview/panos/0000003.jpg"):
        assert (tmp_path / "x" / rel).read_bytes() == (tmp_path / "y" / rel).read_bytes()


def _flat_world(mpp=0.5, n=240, seed=0):
    """A map with no objects, facade == satellite: a smooth random colour field."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (n // 16, n // 16, 3)).astype(np.uint8)
    img = np.asarray(Image.fromarray(small).resize((n, n), Image.BICUBIC))
    return SyntheticMap(satellite=img, facade=img.copy(), height=np.zeros((n, n), np.float32),
                        labels=np.full((n, n), GRASS, np.uint8), metres_per_pixel=mpp,
                        origin_easting=0.0, origin_northing=0.0, sun_azimuth_deg=180.0)


def test_render_matches_polar_warp_on_flat_ground():
    """Ground rows of the ray-cast panorama == the flat-ground polar warp of the tile."""
    world = _flat_world()
    x = y = 119.5                       # tile centre pixel of the map
    tile = cut_tile(world, x, y, extent_m=60.0, size=120)   # 120 map px -> 120 px: no resampling
    assert np.array_equal(tile, world.satellite[60:180, 60:180])
    rgb, lab = render_ground(world, x, y, (48, 192), haze_distance_m=1e12)
    warp = polar_warp(tile, (48, 192), extent_m=60.0)
    ok = ~np.isnan(warp[..., 0])
    assert ok[40:].all() and not ok[:16].any()     # below / above the horizon (row 16)
    assert np.abs(rgb[ok] - warp[ok]).max() < 1.0
    assert (lab[:16] == SKY).all() and (lab[16:] == GRASS).all()


def test_building_occludes_with_the_right_angles():
    world = _flat_world()
    h = world.height
    # a 10 m tall building whose near face is 10 m north of the camera (0.5 m pixels)
    cam_x, cam_y = 120.0, 120.0
    h[60:100, 100:140] = 10.0
    world.labels[60:100, 100:140] = BUILDING
    rgb, lab = render_ground(world, cam_x, cam_y, (90, 360), horizon_fraction=0.5)
    elev, azim = view_angles((90, 360), horizon_fraction=0.5)
    col = int(np.argmin(np.abs(azim)))                # looking north
    d_face = (cam_y - 99.5) * 0.5                     # metres to the southern face
    top = math.atan((10 - 2) / d_face)                # 38.7 degrees up
    bottom = -math.atan(2 / d_face)                   # 11.9 degrees down
    is_b = lab[:, col] == BUILDING
    expect = (elev < top) & (elev > bottom)
    border = (np.abs(elev - top) < math.radians(2.5)) | (np.abs(elev - bottom) < math.radians(2.5))
    assert np.array_equal(is_b[~border], expect[~border]) and expect.sum() > 20
    # looking south nothing is in the way
    south = int(np.argmin(np.abs(np.abs(azim) - math.pi)))
    assert not (lab[:, south] == BUILDING).any()


def test_tile_rotation_puts_heading_up():
    world = generate_map(11, (200, 200), 0.5)
    north = cut_tile(world, 100, 100, extent_m=50, size=100).astype(float)
    east_up = cut_tile(world, 100, 100, extent_m=50, size=100, rotation_deg=90).astype(float)
    assert np.abs(east_up - np.rot90(north, 1)).mean() < 2.0       # east up = turn left
    assert np.abs(east_up - np.rot90(north, -1)).mean() > 10.0


def test_ground_matches_own_tile_but_not_trivially():
    """A hand-crafted matcher (correlate the panorama with the polar warp of every
    candidate tile) finds the right tile far above chance (1/48); the raw panorama is not
    the noiseless rendering."""
    cfg = WorldConfig(min_spacing_m=30.0, pairs_per_region=48, region_m=440.0)
    pairs = list(iter_pairs(48, seed=3, satellite_size=(96, 96), ground_size=(32, 128),
                            config=cfg, with_labels=True))
    n = len(pairs)
    assert n == 48
    warps = [polar_warp(p.satellite, (32, 128), extent_m=100.0) for p in pairs]
    mask = np.logical_and.reduce([~np.isnan(w[..., 0]) for w in warps])
    assert mask.sum() > 1000

    def z(a):
        v = a[mask].astype(np.float64)
        return (v - v.mean(0)) / (v.std(0) + 1e-6)

    G = np.stack([z(p.ground).ravel() for p in pairs])
    S = np.stack([z(w).ravel() for w in warps])
    sim = G @ S.T
    top1 = float((sim.argmax(1) == np.arange(n)).mean())
    assert top1 > 0.4, top1                      # chance: 0.02
    # not trivial: the written panorama differs clearly from the noiseless render
    diffs = []
    clean = list(iter_pairs(8, seed=3, satellite_size=(96, 96), ground_size=(32, 128),
                            config=WorldConfig(min_spacing_m=30.0, pairs_per_region=48,
                                               region_m=440.0, ground_strength=0.0,
                                               satellite_strength=0.0)))
    for p, q in zip(pairs[:8], clean):
        assert (p.easting, p.northing) == (q.easting, q.northing)
        diffs.append(np.abs(p.ground.astype(float) - q.ground.astype(float)).mean())
    assert min(diffs) > 4.0, diffs


def test_write_map(tmp_path):
    meta = write_map(str(tmp_path), seed=4, size_m=(200.0, 300.0), metres_per_pixel=1.0,
                     num_panoramas=5, ground_size=(16, 64), min_spacing_m=20.0, margin_m=40.0)
    bounds = json.loads((tmp_path / "map.json").read_text())
    img = _img(tmp_path / "map.png")
    assert img.shape == (200, 300, 3)
    assert bounds["metres_per_pixel"] == 1.0 and bounds["width_px"] == 300
    assert bounds["max_easting"] - bounds["min_easting"] == pytest.approx(300.0)
    with open(tmp_path / "panoramas.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 5 == meta["num_panoramas"]
    for r in rows:
        e, n, x, y = (float(r[k]) for k in ("easting", "northing", "x_px", "y_px"))
        assert e == pytest.approx(bounds["origin_easting"] + (x + 0.5), abs=1e-2)
        assert n == pytest.approx(bounds["origin_northing"] - (y + 0.5), abs=1e-2)
        assert 40 <= x <= 260 and 40 <= y <= 160
        assert _img(tmp_path / r["path"]).shape == (16, 64, 3)


@pytest.mark.parametrize("kwargs, word", [
    ({"layout": "kitti"}, "layout"),
    ({"satellite_size": (64, 32)}, "satellite_size"),
    ({"num_test": 3}, "num_test"),
    ({"num_train": -1}, "num_train"),
    ({"native_sizes": True, "ground_size": (16, 64)}, "native_sizes"),
])
def test_bad_arguments(tmp_path, kwargs, word):
    args = dict(out_dir=str(tmp_path), layout="cvusa", num_train=1, num_val=1)
    args.update(kwargs)
    with pytest.raises(ValueError, match=word):
        write_dataset(**args)


def _tree(root):
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name not in ("synthetic_meta.json", ".cvmnet_synthetic")}


def test_same_bytes_for_any_number_of_workers(tmp_path):
    """Pair randomness is a function of (seed, stream, split, region, index) only: a pool
    of 2 processes writes exactly the files of the in-process writer, also when regions
    hold fewer positions than pairs_per_region (tiny regions force re-planning)."""
    cfg = WorldConfig(region_m=200.0, pairs_per_region=40, min_spacing_m=20.0)
    for w in (1, 2):
        info = write_dataset(str(tmp_path / f"w{w}"), "cvact", 30, 5, num_test=3, seed=9,
                             satellite_size=(32, 32), ground_size=(16, 32), config=cfg,
                             workers=w)
        assert info["workers"] == w and info["counts"] == {"train": 30, "val": 5, "test": 8}
    a, b = _tree(tmp_path / "w1"), _tree(tmp_path / "w2")
    assert len(a) == 2 * 38 + 1 and a == b          # images + ACT_data.mat, byte-identical
    assert not list(tmp_path.rglob("*.tmp-*"))
    # and the in-memory pairs are the same pairs (positions of the train split)
    utm = scipy.io.loadmat(str(tmp_path / "w1" / "ACT_data.mat"))["utm"]
    order = np.random.default_rng(np.random.SeedSequence([9, 2, 98])).permutation(38)
    mem = list(iter_pairs(30, seed=9, stream=2, split=0, satellite_size=(32, 32),
                          ground_size=(16, 32), config=cfg, horizon_fraction=0.5))
    np.testing.assert_array_equal(utm[order[:30]], [(p.easting, p.northing) for p in mem])
    with pytest.raises(ValueError, match="workers"):
        write_dataset(str(tmp_path / "bad"), "cvusa", 1, 1, workers=0)


def test_blur_and_noise_helpers():
    from cvmnet_tf.data.synthetic import render
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (12, 40, 3)).astype(np.uint8)
    # exact path: separable Gaussian, wrapping horizontally, edge rows repeated
    sigma = 0.8
    r = int(math.ceil(2.5 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    ref = np.zeros(img.shape)
    f = img.astype(np.float64)
    for t, kt in zip(range(-r, r + 1), k):
        ref += kt * np.roll(f, -t, axis=1)
    f, ref = ref, np.zeros(img.shape)
    for t, kt in zip(range(-r, r + 1), k):
        ref += kt * f[np.clip(np.arange(12) + t, 0, 11)]
    np.testing.assert_allclose(render.blur(img, sigma), ref, atol=1e-3)
    # large sigma (downsampled path): a constant image stays constant, a step gets a
    # ramp about as wide as the Gaussian's
    flat = np.full((64, 256, 3), 77, np.uint8)
    np.testing.assert_allclose(render.blur(flat, 4.0), 77, atol=0.51)
    step = np.zeros((16, 256, 3), np.uint8)
    step[:, 128:] = 200                          # two edges: 128 and (wrapping) 0
    row = render.blur(step, 4.0)[8, :, 0]
    ramp = np.flatnonzero((row > 0.16 * 200) & (row < 0.84 * 200))    # +-1 sigma
    mid, seam = ramp[(ramp > 64) & (ramp < 192)], ramp[(ramp < 64) | (ramp > 192)]
    assert 6 <= mid.size <= 10 and abs(mid.mean() - 127.5) < 1.5     # 2 sigma = 8 px
    assert 6 <= seam.size <= 10                  # wraps around the panorama's seam
    # noise: standard normal, deterministic, large shapes pieced together
    n1 = render.normal_noise(np.random.default_rng(3), (1500, 1000))
    n2 = render.normal_noise(np.random.default_rng(3), (1500, 1000))
    assert n1.shape == (1500, 1000) and np.array_equal(n1, n2)
    assert abs(float(n1.mean())) < 0.01 and abs(float(n1.std()) - 1) < 0.01


def test_generator_writes_only_into_empty_or_its_own_folders(tmp_path):
    """A user's folder is refused (naming it), before any file is written; an empty folder,
    one the generator marked and one with an earlier version's synthetic_meta.json are fine."""
    from cvmnet_tf.data.synthetic.files import MARKER_FILE, check_output_dir, claim_output_dir, is_generated_folder

    user = tmp_path / "my_cvusa"
    (user / "splits").mkdir(parents=True)
    (user / "splits" / "train-19zl.csv").write_text("mine\n")
    with pytest.raises(FileExistsError, match=f"--data_dir={str(user)!r} holds files the synthetic generator did "
                                              r"not write \(splits\)"):
        check_output_dir(str(user), "--data_dir")
    with pytest.raises(FileExistsError, match="holds files the synthetic generator did not write"):
        write_dataset(str(user), "cvusa", num_train=2, num_val=1, workers=1)
    assert sorted(p.name for p in user.rglob("*")) == ["splits", "train-19zl.csv"]
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    with pytest.raises(FileExistsError, match="exists and is not a folder"):
        check_output_dir(str(a_file))
    empty = tmp_path / "empty"
    empty.mkdir()
    claim_output_dir(str(empty))
    assert (empty / MARKER_FILE).is_file() and is_generated_folder(str(empty))
    old = tmp_path / "old_synthetic"
    old.mkdir()
    (old / "synthetic_meta.json").write_text(json.dumps({"layout": "cvusa", "seed": 0, "config": {}}))
    check_output_dir(str(old))
    (user / "synthetic_meta.json").write_text(json.dumps({"notes": "my own file"}))
    assert not is_generated_folder(str(user))
    check_output_dir(str(tmp_path / "missing"))
