"""SAFA's polar transform (layers.PolarTransform) against an independent NumPy/SciPy reading of
the paper's equations (Shi et al., NeurIPS 2019, Eq. 1; script/data_preparation.py of the
released SAFA code), its geometry, serialisation, and its place in the models, the branch
encoders and an exported SavedModel."""
import numpy as np
import pytest
import scipy.ndimage

import keras

from cvmnet_tf.layers import PolarTransform, polar_sampling

EPS32 = np.finfo(np.float32).eps


def reference_polar(image, height, width, fill=0.0):
    """SAFA Eq. 1 written out: output pixel (i, j) samples the aerial image (S x S) at row
    S/2 + S/2 * (H-1-i)/H * cos(2 pi j/W), column S/2 - S/2 * (H-1-i)/H * sin(2 pi j/W),
    bilinear, samples outside the image = fill (SciPy's 'grid-constant' mode), in float64."""
    s = image.shape[0]
    jj, ii = np.meshgrid(np.arange(width), np.arange(height))
    row = s / 2.0 + s / 2.0 / height * (height - 1 - ii) * np.cos(2 * np.pi * jj / width)
    col = s / 2.0 - s / 2.0 / height * (height - 1 - ii) * np.sin(2 * np.pi * jj / width)
    fills = np.broadcast_to(np.asarray(fill, np.float64), (image.shape[2],))
    return np.stack([scipy.ndimage.map_coordinates(image[..., c].astype(np.float64), [row, col], order=1,
                                                   mode="grid-constant", cval=float(fills[c]))
                     for c in range(image.shape[2])], -1)


@pytest.mark.backend_agnostic
@pytest.mark.parametrize("s, h, w", [(64, 32, 128), (37, 16, 60), (75, 28, 154)])
def test_matches_the_papers_formula(s, h, w):
    rng = np.random.default_rng(s)
    images = rng.uniform(-130, 150, (2, s, s, 3)).astype(np.float32)
    fill = (-103.939, -116.779, -123.6)
    out = keras.ops.convert_to_numpy(PolarTransform((h, w), fill_value=fill)(images))
    assert out.shape == (2, h, w, 3)
    # each output is a 4-term convex combination plus the fill's share: a few float32
    # roundings (products, sums, the float32 weights) of values up to max |input|
    tol = 8 * EPS32 * max(np.abs(images).max(), np.abs(fill).max())
    for b in range(2):
        np.testing.assert_allclose(out[b], reference_polar(images[b], h, w, fill), rtol=0, atol=tol)


def test_sampling_table_weights_and_geometry():
    s, h, w = 64, 32, 128
    index, weight, inside = polar_sampling(s, (h, w))
    np.testing.assert_allclose(weight.sum(1), 1.0, rtol=0, atol=16 * np.finfo(np.float64).eps)
    # the bottom row samples the centre (S/2, S/2) for every azimuth: pixel (32, 32), weight 1
    bottom = slice((h - 1) * w, h * w)
    assert (index[bottom, 0] == 32 * s + 32).all() and np.allclose(weight[bottom, 0], 1.0)
    assert inside.mean() > 0.99          # only samples at the rim touch row / column S


@pytest.mark.backend_agnostic
def test_azimuth_convention_south_west_north_east():
    """Column 0 looks south, W/4 west, W/2 north, 3W/4 east (a north-centred panorama); the
    bottom row is the centre, distance grows upwards."""
    s, h, w = 65, 16, 64
    r = 20  # pixels from the centre
    for (dr, dc), col in (((r, 0), 0), ((0, -r), w // 4), ((-r, 0), w // 2), ((0, r), 3 * w // 4)):
        image = np.zeros((1, s, s, 1), np.float32)
        rr, cc = s // 2 + dr, s // 2 + dc
        image[0, rr - 2:rr + 3, cc - 2:cc + 3, 0] = 1.0     # a 5 x 5 px bright square
        out = keras.ops.convert_to_numpy(PolarTransform((h, w))(image))[0, ..., 0]
        j = int(np.argmax(out.max(axis=0)))
        assert min(abs(j - col), w - abs(j - col)) <= 1, (dr, dc, j, col)
        # the square's centre lies r - 0.5 px from the sampling centre S/2: radius
        # (S/2) (H-1-i) / H, so the brightness-weighted mean of H-1-i is (r - 0.5) H / (S/2)
        prof = out.sum(axis=1)
        mean_up = float((prof * (h - 1 - np.arange(h))).sum() / prof.sum())
        assert abs(mean_up - (r - 0.5) * h / (s / 2)) <= 0.5, mean_up


def test_keras_round_trip(tmp_path):
    layer = PolarTransform((16, 64), fill_value=(-1.0, -2.0, -3.0), name="polar_sat")
    inp = keras.Input((40, 40, 3))
    model = keras.Model(inp, layer(inp))
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    x = np.random.default_rng(0).normal(size=(2, 40, 40, 3)).astype(np.float32)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded(x)), keras.ops.convert_to_numpy(model(x)))
    assert loaded.layers[-1].get_config()["output_size"] == [16, 64]


def test_bad_inputs_are_refused():
    from cvmnet_tf import models

    with pytest.raises(ValueError, match="square"):
        PolarTransform((16, 64))(np.zeros((1, 32, 40, 3), np.float32))
    with pytest.raises(ValueError, match="output_size"):
        PolarTransform((0, 64))
    with pytest.raises(ValueError, match="fill_value"):
        PolarTransform((16, 64), fill_value=(1.0, 2.0))(np.zeros((1, 32, 32, 3), np.float32))
    with pytest.raises(ValueError, match="needs polar_satellite"):
        models.build_model("cvm_net_i", satellite_shape=(32, 32), ground_shape=(16, 64), num_clusters=2,
                           descriptor_dim=8, width=0.125, polar_size=(16, 64))
    with pytest.raises(ValueError, match="square satellite_shape"):
        models.build_model("cvm_net_i", satellite_shape=(32, 48), ground_shape=(16, 64), num_clusters=2,
                           descriptor_dim=8, width=0.125, polar_satellite=True)


@pytest.mark.backend_agnostic
def test_model_option_black_fill_and_encoders(tmp_path):
    from cvmnet_tf import models
    from cvmnet_tf.models.base import BLACK_NETWORK_INPUT

    m = models.build_model("cvm_net_i", satellite_shape=(64, 64), ground_shape=(32, 128), num_clusters=4,
                           descriptor_dim=16, width=0.125, polar_satellite=True, init="he")
    # default polar size (S/2, 2S) from the satellite alone, and the .keras file records it
    assert tuple(m.get_layer("VGG_sat").inputs[0].shape[1:3]) == (32, 128)
    assert m.get_config()["polar_satellite"] is True and m.get_config()["polar_size"] == [32, 128]
    assert m.get_layer("polar_sat").fill_value == BLACK_NETWORK_INPUT
    # a limited field-of-view ground image does not change the polar image
    crop = models.build_model("cvm_net_i", satellite_shape=(64, 64), ground_shape=(32, 32), num_clusters=4,
                              descriptor_dim=16, width=0.125, polar_satellite=True)
    assert tuple(crop.get_layer("VGG_sat").inputs[0].shape[1:3]) == (32, 128)
    sat_enc = models.satellite_encoder(m)
    assert any(isinstance(layer, PolarTransform) for layer in sat_enc.layers)
    x = np.random.default_rng(1).normal(scale=50, size=(2, 64, 64, 3)).astype(np.float32)
    d = keras.ops.convert_to_numpy(sat_enc(x))
    both = m({"satellite": x, "ground": np.zeros((2, 32, 128, 3), np.float32)})
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0, rtol=0, atol=16 * EPS32)
    np.testing.assert_allclose(d, keras.ops.convert_to_numpy(both["satellite"]), rtol=0, atol=16 * EPS32)
    path = str(tmp_path / "polar.keras")
    m.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.get_config()["polar_size"] == [32, 128]
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(models.satellite_encoder(loaded)(x)), d)


def test_black_fill_is_the_network_input_of_black():
    from cvmnet_tf.data.preprocessing import CAFFE_BGR_MEAN
    from cvmnet_tf.models.base import BLACK_NETWORK_INPUT

    assert BLACK_NETWORK_INPUT == tuple(-m for m in CAFFE_BGR_MEAN)


def test_saved_model_runs_the_same_polar_sampling(tmp_path):
    """Training, evaluation and the exported SavedModel share one sampling: the polar layer is
    inside the satellite branch, so the serving signature reproduces the Keras model on the
    same raw image (uint8 in, the evaluation preprocessing inside)."""
    import tensorflow as tf

    from cvmnet_tf import models
    from cvmnet_tf.data import preprocessing as pp
    from cvmnet_tf.inference import serving

    keras.utils.set_random_seed(3)
    m = models.build_model("cvm_net_i", satellite_shape=(48, 48), ground_shape=(16, 64), num_clusters=4,
                           descriptor_dim=16, width=0.125, polar_satellite=True, init="he")
    ckpt = str(tmp_path / "m.keras")
    m.save(ckpt)
    out = str(tmp_path / "saved")
    serving.export_saved_model(ckpt, out, dataset="cvusa")
    loaded = tf.saved_model.load(out)
    tiles = np.random.default_rng(2).integers(0, 256, (3, 48, 48, 3), dtype=np.uint8)
    served = loaded.signatures["satellite"](images=tf.constant(tiles))["descriptor"].numpy()
    net_in = np.stack([pp.preprocess_satellite(t, (48, 48)).numpy() for t in tiles])
    direct = keras.ops.convert_to_numpy(models.satellite_encoder(m)(net_in))
    # unit vectors from the same float32 graph: a few float32 roundings of values <= 1
    assert np.abs(direct).max() <= 1.0
    np.testing.assert_allclose(served, direct, rtol=0, atol=64 * EPS32)
    assert np.abs(served - direct).max() < 0.01 * np.abs(direct - direct[::-1]).max()  # not all equal
