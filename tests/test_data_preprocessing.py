"""Preprocessing (cvmnet_tf.data.preprocessing) against independent NumPy references."""
import io
import math

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from cvmnet_tf.data import preprocessing as pp

MEAN_BGR = np.array([103.939, 116.779, 123.6], np.float32)


def area_resize_np(img, out_h, out_w):
    """Box-filter resize (cv2.INTER_AREA for downscaling): exact pixel-overlap weights."""
    def weights(n_in, n_out):
        s = n_in / n_out
        m = np.zeros((n_out, n_in))
        for i in range(n_out):
            a, b = i * s, (i + 1) * s
            for j in range(int(math.floor(a)), min(int(math.ceil(b)), n_in)):
                m[i, j] = (min(b, j + 1) - max(a, j)) / s
        return m
    rows = np.tensordot(weights(img.shape[0], out_h), img.astype(np.float64), axes=(1, 0))
    return np.tensordot(rows, weights(img.shape[1], out_w), axes=(1, 1)).transpose(0, 2, 1)


def net_input_np(rgb):
    return rgb[..., ::-1].astype(np.float64) - MEAN_BGR


_params_fn = tf.function(pp.satellite_augment_params)


def draw(shape, seed):
    """(offset_h, offset_w, crop_h, crop_w, k) as ints, through one traced graph."""
    return [int(v) for v in _params_fn(tf.constant(shape, tf.int32), tf.constant(seed, tf.int64))]


def pattern(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_constant_colour_gives_colour_minus_mean_in_bgr_order():
    rgb = np.array([200, 100, 50], np.uint8)
    expected = np.array([50 - 103.939, 100 - 116.779, 200 - 123.6], np.float32)
    sat = pp.preprocess_satellite(np.broadcast_to(rgb, (75, 75, 3)), (64, 64)).numpy()
    assert sat.shape == (64, 64, 3) and sat.dtype == np.float32
    np.testing.assert_allclose(sat, np.broadcast_to(expected, sat.shape), atol=1e-4)
    for dataset, shape, size in (("cvusa", (224, 1232), (224, 1232)),
                                 ("cvusa", (40, 160), (32, 128)),
                                 ("cvact", (64, 128), (32, 128)),
                                 ("vohays", (50, 50), (32, 32))):
        grd = pp.preprocess_ground(np.broadcast_to(rgb, shape + (3,)), size, dataset).numpy()
        assert grd.shape == size + (3,), dataset
        np.testing.assert_allclose(grd, np.broadcast_to(expected, grd.shape), atol=1e-4,
                                   err_msg=dataset)
    back = pp.from_network_input(tf.constant(expected)).numpy()
    np.testing.assert_allclose(back, [200, 100, 50], atol=1e-4)


def test_satellite_evaluation_is_area_resize():
    img = pattern(75, 75)
    out = pp.preprocess_satellite(img, (64, 64), training=False).numpy()
    np.testing.assert_allclose(out, net_input_np(area_resize_np(img, 64, 64)), atol=1e-3)


def test_augment_params_follow_released_rule_at_750():
    crops, ks = [], []
    for i in range(300):
        oh, ow, ch, cw, k = draw([750, 750, 3], [7, i])
        assert ch == cw and oh == ow
        if ch != 750:
            assert 513 <= ch <= 748
            assert oh == int((750 - ch) / 2)
        else:
            assert oh == 0
        assert 0 <= k <= 4
        crops.append(ch)
        ks.append(k)
    assert set(ks) == {0, 1, 2, 3, 4}
    frac_nocrop = np.mean(np.array(crops) == 750)
    assert abs(frac_nocrop - 512 / 748) < 0.1
    # same seed, same draw; different seed, (eventually) different draw
    a = draw([750, 750, 3], [1, 2])
    b = draw([750, 750, 3], [1, 2])
    assert a == b


def test_augment_params_scale_with_the_tile_size():
    for i in range(100):
        oh, ow, ch, cw, k = draw([75, 75, 3], [3, i])
        assert ch == 75 or 51 <= ch <= 74
        assert oh == (75 - ch) // 2


def test_training_satellite_is_a_true_crop_and_rotation():
    img = pattern(75, 75, seed=1)
    seen = set()
    for i in range(60):
        seed = [11, i]
        oh, ow, ch, cw, k = draw(img.shape, seed)
        key = (ch != 75, k % 4)
        if key in seen:
            continue
        seen.add(key)
        out = pp.preprocess_satellite(img, (64, 64), training=True, seed=seed).numpy()
        crop = img[oh:oh + ch, ow:ow + cw]
        ref = np.rot90(area_resize_np(crop, 64, 64), k % 4, axes=(0, 1))
        np.testing.assert_allclose(out, net_input_np(ref), atol=1e-3, err_msg=str((seed, ch, k)))
    assert {(True, r) for r in range(4)} & seen and {(False, r) for r in range(4)} & seen
    assert len({r for _, r in seen}) == 4


def test_training_needs_square_target():
    with pytest.raises(ValueError, match="square"):
        pp.preprocess_satellite(pattern(75, 75), (64, 32), training=True, seed=[0, 0])


def test_cvusa_paper_ground_is_unchanged_and_wrong_size_rejected():
    img = pattern(224, 1232, seed=2)
    out = pp.preprocess_ground(img, (224, 1232), "cvusa").numpy()
    np.testing.assert_allclose(out, net_input_np(img), atol=1e-4)
    assert bool(pp.ground_ok([224, 1232, 3], (224, 1232), "cvusa"))
    assert not bool(pp.ground_ok([224, 1230, 3], (224, 1232), "cvusa"))
    assert bool(pp.ground_ok([224, 1230, 3], (32, 128), "cvusa"))
    with pytest.raises(tf.errors.InvalidArgumentError, match="224 x 1232"):
        pp.preprocess_ground(pattern(220, 1232), (224, 1232), "cvusa")
    small = pp.preprocess_ground(img, (32, 128), "cvusa").numpy()
    np.testing.assert_allclose(small, net_input_np(area_resize_np(img, 32, 128)), atol=1e-3)


def test_cvact_ground_keeps_central_half_of_rows():
    img = pattern(64, 96, seed=3)
    out = pp.preprocess_ground(img, (16, 48), "cvact").numpy()
    ref = area_resize_np(img[16:48], 16, 48)
    np.testing.assert_allclose(out, net_input_np(ref), atol=1e-3)


def test_vohays_ground_resize_230_then_centre_crop_224():
    img = pattern(230, 230, seed=4)  # already at 230: the resize is the identity
    out = pp.preprocess_ground(img, (224, 224), "vohays").numpy()
    np.testing.assert_allclose(out, net_input_np(img[3:227, 3:227]), atol=1e-3)


def test_graph_safe_inside_tf_function():
    @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8)])
    def both(x):
        return (pp.preprocess_satellite(x, (64, 64)),
                pp.preprocess_ground(x, (32, 128), "cvact"),
                pp.preprocess_satellite(x, (64, 64), training=True))
    img = pattern(75, 75, seed=5)
    s, g, t = both(tf.constant(img))
    np.testing.assert_allclose(s.numpy(), net_input_np(area_resize_np(img, 64, 64)), atol=1e-3)
    assert g.shape == (32, 128, 3) and t.shape == (64, 64, 3)


def _jpeg_bytes(img, quality=95):
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def test_decode_checked_flags_truncated_and_garbage():
    img = pattern(40, 40, seed=6)
    good = _jpeg_bytes(img)
    out, ok = pp.decode_image_checked(tf.constant(good))
    assert bool(ok) and out.shape == (40, 40, 3)
    np.testing.assert_array_equal(
        out.numpy(), tf.io.decode_jpeg(good, dct_method="INTEGER_ACCURATE").numpy())
    for bad in (good[: len(good) // 2], b"not an image at all", b"", good[:2]):
        _, ok = pp.decode_image_checked(tf.constant(bad))
        assert not bool(ok)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    out, ok = pp.decode_image_checked(tf.constant(buf.getvalue()))
    assert bool(ok)
    np.testing.assert_array_equal(out.numpy(), img)


def test_university1652_ground_is_area_resize_without_crop():
    img = pattern(50, 40, seed=7)
    out = pp.preprocess_ground(img, (20, 16), "university1652").numpy()
    np.testing.assert_allclose(out, net_input_np(area_resize_np(img, 20, 16)), atol=1e-3)
    assert bool(pp.ground_ok([50, 40, 3], (20, 16), "university1652"))


def test_to_network_input_batched_and_unknown_shapes_match_reference():
    img = pattern(6, 5, seed=8)
    batch = np.stack([img, pattern(6, 5, seed=9)])
    ref = net_input_np(batch)
    for x in (batch, batch.astype(np.float32)):
        np.testing.assert_allclose(pp.to_network_input(x).numpy(), ref, atol=1e-5)

    @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8)])
    def dynamic(x):
        return pp.to_network_input(x)
    np.testing.assert_allclose(dynamic(img).numpy(), net_input_np(img), atol=1e-5)
    np.testing.assert_allclose(pp.from_network_input(pp.to_network_input(img)).numpy(), img,
                               atol=1e-4)


def test_pixels_functions_compose_to_preprocess():
    img = pattern(75, 75, seed=10)
    seed = tf.constant([5, 6], tf.int64)
    for training in (False, True):
        a = pp.preprocess_satellite(img, (64, 64), training, seed if training else None)
        b = pp.to_network_input(pp.satellite_pixels(img, (64, 64), training,
                                                    seed if training else None))
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    g = pattern(224, 1232, seed=11)
    assert pp.ground_pixels(g, (224, 1232), "cvusa").dtype == tf.uint8
    np.testing.assert_array_equal(pp.ground_pixels(g, (224, 1232), "cvusa").numpy(), g)
