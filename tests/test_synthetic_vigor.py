"""The synthetic VIGOR layout: read back by the real loader, labels and offsets geometrically right."""
import hashlib
import math
import os

import numpy as np
import pytest
from PIL import Image

from cvmnet_tf.data import vigor
from cvmnet_tf.data.synthetic.writers import vigor as synth_vigor
from cvmnet_tf.evaluation import vigor_metrics as vm

SAT = 64


@pytest.fixture(scope="module")
def synthetic_vigor(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("vigor"))
    info = synth_vigor.write_vigor(root, seed=3, panoramas_per_city=6, satellite_size=SAT, panorama_size=(32, 64),
                                   satellite_strength=0.0)
    return root, info


def test_loader_reads_every_split(synthetic_vigor):
    root, info = synthetic_vigor
    same_test = vigor.load_vigor_split(root, "test", area="same")
    same_train = vigor.load_vigor_split(root, "train", area="same")
    cross_test = vigor.load_vigor_split(root, "test", area="cross")
    cross_train = vigor.load_vigor_split(root, "train", area="cross")
    n = {c: v["panoramas"] for c, v in info["cities"].items()}
    assert all(v >= 4 for v in n.values())
    assert len(same_test) + len(same_train) == sum(n.values())
    assert not set(same_test.panorama_paths) & set(same_train.panorama_paths)
    assert len(cross_test) == n["SanFrancisco"] + n["Chicago"]
    assert len(cross_train) == n["NewYork"] + n["Seattle"]
    assert same_test.num_satellites == sum(v["satellites"] for v in info["cities"].values())
    assert cross_test.num_satellites == info["cities"]["Chicago"]["satellites"] * 2
    for s in (same_test, same_train, cross_test, cross_train):
        assert s.dropped == []
        with Image.open(s.satellite_paths[0]) as im:
            assert im.size == (SAT, SAT)
        with Image.open(s.panorama_paths[0]) as im:
            assert im.size == (64, 32)


def test_positive_centre_plus_offset_is_the_camera_position(synthetic_vigor):
    root, _ = synthetic_vigor
    s = vigor.load_vigor_split(root, "test", area="same")
    # rounding: offsets to whole 0.114 m pixels (<= 0.057 m per axis), panorama names to
    # 1e-6 degrees (<= 0.056 m per axis): < 0.16 m in all
    bound = math.hypot(0.057 + 0.056, 0.057 + 0.056) + 0.01
    for j in range(4):
        centre = s.satellite_latlon[s.positive_index if j == 0 else s.semi_positive_index[:, j - 1]]
        pred = vm.offset_to_latlon(centre, s.offsets_px[:, j])
        err = vm.great_circle_distance_m(pred, s.panorama_latlon, "haversine")
        assert err.max() < bound, (j, err.max())
    # the offsets are real: the queries are off the tile centres by metres
    centre_err = vm.great_circle_distance_m(s.satellite_latlon[s.positive_index], s.panorama_latlon, "haversine")
    assert np.median(centre_err) > 3.0


def test_positive_is_the_nearest_tile_and_semis_cover_the_query(synthetic_vigor):
    root, _ = synthetic_vigor
    s = vigor.load_vigor_split(root, "test", area="cross")
    quarter = vigor.TILE_SIZE_PX / 4
    d = s.offsets_px
    assert np.abs(d[:, 0]).max() <= quarter + 0.5                    # the central quarter of the positive
    assert np.abs(d[:, 1:]).max() < vigor.TILE_SIZE_PX / 2           # inside every semi-positive
    dist = np.hypot(d[..., 0], d[..., 1])
    assert np.all(dist[:, :1] <= dist[:, 1:] + 1e-9)
    # the 4 tiles form a 2 x 2 block of the grid: offsets differ by one grid step (320 px)
    step = vigor.TILE_SIZE_PX / 2
    rel = np.abs(d[:, 1:] - d[:, :1]) / step
    np.testing.assert_allclose(np.sort(rel.reshape(len(s), -1), axis=1),
                               np.tile([0, 0, 1, 1, 1, 1], (len(s), 1)), atol=2 / step)
    # brute force over the whole pool: the positive has the nearest centre, and the tiles
    # covering the query (|d_north|, |d_east| < half a tile) are exactly positive + semis
    half = synth_vigor.TILE_EXTENT_M / 2
    for i in range(len(s)):
        q = np.repeat(s.panorama_latlon[i:i + 1], s.num_satellites, 0)
        all_d = vm.great_circle_distance_m(s.satellite_latlon, q, "haversine")
        # (a query half-way between two centres may go either way within the name rounding)
        assert all_d[s.positive_index[i]] <= all_d.min() + 0.16
        d_north = np.radians(s.satellite_latlon[:, 0] - q[:, 0]) * vm.EARTH_RADIUS_M
        d_east = np.radians(s.satellite_latlon[:, 1] - q[:, 1]) * vm.EARTH_RADIUS_M * np.cos(np.radians(q[:, 0]))
        covering = np.flatnonzero((np.abs(d_north) < half) & (np.abs(d_east) < half))
        assert set(covering) == {s.positive_index[i], *s.semi_positive_index[i]}


def _best_shift(a, b, predicted, radius=3):
    """Integer (dr, dc) near ``predicted`` minimising the mean squared difference of the
    overlap of a and b when pixel p of a is compared with pixel p + (dr, dc) of b."""
    best, best_err = None, np.inf
    h, w = a.shape[:2]
    pr, pc = (int(round(v)) for v in predicted)
    for dr in range(pr - radius, pr + radius + 1):
        for dc in range(pc - radius, pc + radius + 1):
            r0, r1 = max(0, -dr), min(h, h - dr)
            c0, c1 = max(0, -dc), min(w, w - dc)
            if r1 - r0 < 8 or c1 - c0 < 8:
                continue
            err = np.mean((a[r0:r1, c0:c1] - b[r0 + dr:r1 + dr, c0 + dc:c1 + dc]) ** 2)
            if err < best_err:
                best, best_err = (dr, dc), err
    return best


def test_image_content_agrees_with_the_offsets(synthetic_vigor):
    """A pixel matcher: the shift that best aligns a positive tile with a semi-positive
    one is the one the two offsets predict (the same ground point at both query pixels)."""
    root, _ = synthetic_vigor
    s = vigor.load_vigor_split(root, "test", area="cross")
    agree, total = 0, 0
    for i in range(len(s)):
        a = np.asarray(Image.open(s.satellite_paths[s.positive_index[i]]).convert("L"), np.float32)
        qa = s.query_pixel(0, SAT)[i]
        for j in range(3):
            b = np.asarray(Image.open(s.satellite_paths[s.semi_positive_index[i, j]]).convert("L"), np.float32)
            predicted = s.query_pixel(j + 1, SAT)[i] - qa
            got = _best_shift(a, b, predicted)
            total += 1
            agree += got is not None and max(abs(got[0] - predicted[0]), abs(got[1] - predicted[1])) <= 1.0
    assert agree == total, (agree, total)


def test_deterministic_and_bad_arguments(tmp_path):
    def digest(root):
        h = hashlib.sha256()
        for dirpath, _, files in sorted(os.walk(root)):
            for f in sorted(files):
                with open(os.path.join(dirpath, f), "rb") as fh:
                    h.update(f.encode() + fh.read())
        return h.hexdigest()
    kw = dict(seed=1, cities=("Chicago",), panoramas_per_city=2, satellite_size=16, panorama_size=(16, 32))
    synth_vigor.write_vigor(str(tmp_path / "a"), **kw)
    synth_vigor.write_vigor(str(tmp_path / "b"), **kw)
    assert digest(str(tmp_path / "a")) == digest(str(tmp_path / "b"))
    with pytest.raises(ValueError, match="region_m=80"):
        synth_vigor.write_vigor(str(tmp_path / "c"), region_m=80.0)
    with pytest.raises(ValueError, match="cities must be among"):
        synth_vigor.write_vigor(str(tmp_path / "c"), cities=("Paris",))


def test_loader_metrics_and_offsets_together(synthetic_vigor):
    """Oracle descriptors (query i = its positive's one-hot): VIGOR's metrics are perfect,
    the metre error of the tile centre is the label offset, and the offset brings it to 0."""
    root, _ = synthetic_vigor
    s = vigor.load_vigor_split(root, "test", area="same")
    pool = np.eye(s.num_satellites, dtype=np.float32)
    q = pool[s.positive_index]
    out = vm.evaluate_vigor(q, pool, s.positive_index, s.semi_positive_index, query_latlon=s.panorama_latlon,
                            satellite_latlon=s.satellite_latlon, distance="haversine", block_bytes=5 * 100 * 3)
    assert out["recall@1"] == out["hit_rate"] == 1.0 and out["top_percent_k"] == int(0.01 * s.num_satellites) + 1
    res = vm.vigor_ranks(q, pool, s.positive_index, s.semi_positive_index)
    centre_err = vm.localization_errors_m(res.best_index, s.panorama_latlon, s.satellite_latlon, distance="haversine")
    label = np.hypot(*s.offsets_m[:, 0].T)
    assert np.abs(centre_err - label).max() < 0.17        # rounding of offsets and names (see above)
    assert out["meter/mean_error_m"] == pytest.approx(centre_err.mean())
    fixed = vm.localization_errors_m(res.best_index, s.panorama_latlon, s.satellite_latlon, s.offsets_px[:, 0],
                                     distance="haversine")
    assert fixed.max() < 0.17
