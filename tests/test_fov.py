"""Limited-FoV crops (cvmnet_tf.data.fov) against NumPy transcriptions of DSM and TransGeo."""
import numpy as np
import pytest
import tensorflow as tf

from cvmnet_tf.data import fov
from cvmnet_tf.data.synthetic import generate_map, render_ground


def dsm_crop(img, fov_deg, random_shift):
    """DSM polar_input_data_orien_FOV_3.py: img[:, ((j - shift) % W)[:grd_width], :]."""
    w = img.shape[1]
    j = np.arange(w)
    return img[:, ((j - random_shift) % w)[:int(fov_deg / 360 * w)], :]


def transgeo_crop(img, fov_deg, angle):
    """TransGeo dataset/CVUSA.py LimitedFoV (on (H, W, C) instead of (C, H, W))."""
    w = img.shape[1]
    r = int(angle / 360.0 * w)
    shifted = img.copy()
    if r > 0:
        shifted[:, :r] = img[:, -r:]
        shifted[:, r:] = img[:, :w - r]
    return shifted[:, :int(fov_deg / 360.0 * w)]


@pytest.fixture(scope="module")
def pano():
    return np.random.default_rng(0).integers(0, 255, size=(6, 512, 3)).astype(np.uint8)


@pytest.mark.parametrize("fov_deg", [360, 270, 180, 90, 70, 1])
@pytest.mark.parametrize("shift", [0, 1, 137, 511])
def test_crop_equals_dsm_and_transgeo(pano, fov_deg, shift):
    start = (512 - shift) % 512
    got = fov.crop_fov(pano, fov_deg, start).numpy()
    ref = dsm_crop(pano, fov_deg, shift)
    np.testing.assert_array_equal(got, ref)
    assert got.shape == (6, int(fov_deg / 360 * 512), 3)
    # TransGeo's whole-degree angle a is a shift of int(a / 360 * W) columns
    angle = 123
    np.testing.assert_array_equal(fov.crop_fov(pano, fov_deg, (512 - int(angle / 360 * 512)) % 512).numpy(),
                                  transgeo_crop(pano, fov_deg, angle))


def test_batched_crops_and_any_fov(pano):
    batch = np.stack([pano, pano[:, ::-1], pano[::-1]])
    starts = np.array([5, 500, 256])
    got = fov.crop_fov(tf.constant(batch), 97.3, tf.constant(starts)).numpy()
    w = fov.fov_width(512, 97.3)
    assert w == int(97.3 / 360 * 512) == 138
    for b in range(3):
        np.testing.assert_array_equal(got[b], batch[b][:, (starts[b] + np.arange(w)) % 512])


def test_bad_fov_and_shapes(pano):
    for bad in (0, -10, 360.5, float("nan")):
        with pytest.raises(ValueError, match="field of view must be in"):
            fov.fov_width(512, bad)
    with pytest.raises(ValueError, match="less than one column"):
        fov.fov_width(100, 1.0)
    with pytest.raises(ValueError, match="scalar start_column"):
        fov.crop_fov(pano, 90, [1, 2])
    with pytest.raises(ValueError, match=r"\(H, W, C\)"):
        fov.crop_fov(pano[0], 90, 0)


def test_headings_follow_dsm_and_round_trip():
    width = 512
    for fov_deg in (360, 180, 90):      # w = FOV / 360 * W exactly: DSM's label formula
        starts = np.arange(0, width, 7)
        np.testing.assert_allclose(fov.crop_heading(starts, width, fov_deg),
                                   fov.dsm_orientation_label(starts, width, fov_deg), atol=1e-9)
    # north at the centre column: a 90 degree crop centred on north starts 64 columns before it
    assert fov.heading_to_start_column(0.0, 512, 90) == 256 - 64
    assert fov.heading_to_start_column(90.0, 512, 90) == 384 - 64          # east at 3/4 of the width
    assert fov.heading_to_start_column(-180.0, 512, 90) == (0 - 64) % 512   # south at column 0
    for fov_deg in (70, 90, 180, 270):
        h = np.linspace(-180, 179, 97)
        back = fov.crop_heading(fov.heading_to_start_column(h, 640, fov_deg), 640, fov_deg)
        err = (back - h + 180) % 360 - 180
        assert np.abs(err).max() <= 360 / 640 / 2 + 1e-9     # at most half a column


def test_crop_at_heading_is_the_rendered_limited_fov_view():
    """The crop of a synthetic panorama at heading h is the synthetic world's own
    FoV render at h (render.view_angles: north at the centre column)."""
    world = generate_map(11, (240, 240), 0.5)
    x, y = 120.0, 120.0
    full, _ = render_ground(world, x, y, (32, 256))
    for fov_deg, start in ((90, 0), (90, 37), (180, 250)):
        heading = float(fov.crop_heading(start, 256, fov_deg))
        view, _ = render_ground(world, x, y, (32, fov.fov_width(256, fov_deg)), heading_deg=heading, fov_deg=fov_deg)
        crop = fov.crop_fov(full, fov_deg, start).numpy()
        # same rays: equal up to float32 rounding of the azimuths (a few ulp of 255)
        assert np.abs(crop - view).max() <= 1e-3 * 255, (fov_deg, start, np.abs(crop - view).max())
        # and it is not the view of another heading
        other, _ = render_ground(world, x, y, view.shape[:2], heading_deg=heading + 90, fov_deg=fov_deg)
        assert np.abs(crop - other).mean() > 5


def test_fixed_test_headings_are_dsms_stream_and_pure():
    n = 50
    np.random.seed(2019)                              # DSM's test loop: one rand() per image, in order
    dsm_shift = np.array([int(np.random.rand() * 512 * 360 / 360) for _ in range(n)])
    got = fov.test_start_columns(np.arange(n), 512)
    np.testing.assert_array_equal(got, (512 - dsm_shift) % 512)
    # a pure function of (seed, index): any subset or order gives the same values
    idx = np.array([49, 3, 17, 3])
    np.testing.assert_array_equal(fov.test_start_columns(idx, 512), got[idx])
    assert not np.array_equal(fov.test_start_columns(np.arange(n), 512, seed=7), got)
    assert np.all(fov.test_start_columns(np.arange(n), 512, max_rotation_deg=0) == 0)   # known orientation


def test_random_training_crops_are_seeded_and_uniform(pano):
    starts = [int(fov.random_start_column(512, tf.constant([3, i]))) for i in range(400)]
    again = [int(fov.random_start_column(512, tf.constant([3, i]))) for i in range(400)]
    assert starts == again
    assert 0 <= min(starts) and max(starts) < 512
    # roughly uniform over the circle: each quarter holds 100 +- 4 sigma (sigma = sqrt(400 * 3/16) = 8.7)
    counts = np.bincount(np.array(starts) // 128, minlength=4)
    assert np.all(np.abs(counts - 100) < 35), counts
    crop, start = fov.random_fov_crop(pano, 90, tf.constant([1, 2]))
    np.testing.assert_array_equal(crop.numpy(), pano[:, (int(start) + np.arange(128)) % 512])
    small = [int(fov.random_start_column(512, tf.constant([0, i]), max_rotation_deg=20)) for i in range(100)]
    shifts = (512 - np.array(small)) % 512
    assert shifts.max() < 512 * 20 / 360
