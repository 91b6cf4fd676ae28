"""Device-side preprocessing: the NetworkInput layer, "uint8" models and old float-input
checkpoints (keras.ops only: also run under JAX)."""
import json
import os
import zipfile

import keras
import numpy as np
import pytest

from cvmnet_tf import models
from cvmnet_tf.layers import NetworkInput
from harness import run_layer_test, to_numpy

pytestmark = pytest.mark.backend_agnostic

MEAN = np.array([103.939, 116.779, 123.6], np.float32)
SMALL = dict(satellite_shape=(32, 32), ground_shape=(16, 64), width=0.0625, num_clusters=4, descriptor_dim=16)


def net_input_np(rgb_uint8):
    """NumPy reference: RGB uint8 -> BGR float32 minus the caffe means (one float32 rounding)."""
    return rgb_uint8[..., ::-1].astype(np.float32) - MEAN


def pixels(shape, seed):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_layer_values_config_and_float_passthrough(tmp_path):
    x = pixels((2, 5, 7, 3), 0)
    layer = NetworkInput()
    # float32 subtraction of exact integers is correctly rounded: identical to NumPy's
    np.testing.assert_array_equal(to_numpy(layer(x)), net_input_np(x))
    assert keras.backend.standardize_dtype(layer(x).dtype) == "float32"
    pre = net_input_np(x)
    np.testing.assert_array_equal(to_numpy(layer(pre)), pre)  # float: already the network input
    # standard checks (config, .keras round trip, mixed precision) on the float path
    run_layer_test(NetworkInput, pre, tmp_path, expected_output_shape=pre.shape, precise_output_dtype="float16")
    custom = NetworkInput(mean=(1.0, 2.0, 3.0))
    assert NetworkInput.from_config(custom.get_config()).mean == (1.0, 2.0, 3.0)
    with pytest.raises(ValueError, match="3 channels"):
        NetworkInput()(np.zeros((1, 2, 2, 4), np.uint8))


def test_layer_means_are_the_preprocessing_means():
    from cvmnet_tf.data.preprocessing import CAFFE_BGR_MEAN
    from cvmnet_tf.layers.network_input import CAFFE_BGR_MEAN as layer_mean
    from cvmnet_tf.models.base import BLACK_NETWORK_INPUT

    assert tuple(layer_mean) == tuple(CAFFE_BGR_MEAN)
    assert tuple(-m for m in layer_mean) == tuple(BLACK_NETWORK_INPUT)


def _pair(seed=0, batch=2):
    return {"satellite": pixels((batch,) + SMALL["satellite_shape"] + (3,), seed),
            "ground": pixels((batch,) + SMALL["ground_shape"] + (3,), seed + 1)}


def _assert_close(a, b):
    # same float32 operations on the same values; the bound allows a few float32 roundings
    # of unit-norm descriptors (|x| <= 1) accumulated over the model's sums
    for k in a:
        np.testing.assert_allclose(to_numpy(a[k]), to_numpy(b[k]), rtol=0, atol=64 * 2.0 ** -23)


@pytest.mark.parametrize("name", ["cvm_net_i", "cvm_net_ii", "siamese_vgg"])
def test_uint8_model_equals_float_model_on_preprocessed_input(name, tmp_path):
    kwargs = {k: v for k, v in SMALL.items() if k in models.model_arguments(name)}
    raw = models.build_model(name, **kwargs)
    old = models.build_model(name, input_dtype="float32", **kwargs)
    old.set_weights(raw.get_weights())
    assert models.model_input_dtype(raw) == "uint8" and models.model_input_dtype(old) == "float32"
    assert dict(raw.architecture_arguments)["input_dtype"] == "uint8"
    assert "input_dtype" not in dict(old.architecture_arguments)  # old configs / fingerprints unchanged
    x = _pair()
    pre = {k: net_input_np(v) for k, v in x.items()}
    want = old(pre, training=False)
    _assert_close(raw(x, training=False), want)
    _assert_close(raw(pre, training=False), want)  # float into a uint8 model: taken as preprocessed
    for key in models.encoders.BRANCH_KEYS:  # branch encoders take the network input for every model
        enc = models.branch_encoder(raw, key)
        np.testing.assert_allclose(to_numpy(enc(pre[key])), to_numpy(want[key]), rtol=0, atol=64 * 2.0 ** -23)
    path = os.path.join(tmp_path, "raw.keras")
    raw.save(path)
    loaded = keras.saving.load_model(path, compile=False)
    assert models.model_input_dtype(loaded) == "uint8"
    _assert_close(loaded(x, training=False), want)
    with pytest.raises(ValueError, match="input_dtype"):
        models.build_model(name, input_dtype="float16", **kwargs)


def test_old_float_checkpoint_loads_and_feeds_new_model(tmp_path):
    """A .keras file written before input_dtype existed (no such key, no NetworkInput layer):
    loads as a float-input model, and its weights load into a new uint8 model (resume)."""
    old = models.build_model("cvm_net_i", input_dtype="float32", **SMALL)
    path = os.path.join(tmp_path, "old.keras")
    old.save(path)
    with zipfile.ZipFile(path) as z:
        config = json.loads(z.read("config.json"))
    text = json.dumps(config)
    assert "input_dtype" not in text and "NetworkInput" not in text  # what an old file holds
    loaded = keras.saving.load_model(path, compile=False)
    assert models.model_input_dtype(loaded) == "float32"
    x = _pair(3)
    pre = {k: net_input_np(v) for k, v in x.items()}
    want = old(pre, training=False)
    _assert_close(loaded(pre, training=False), want)
    new = models.build_model("cvm_net_i", **SMALL)
    new.load_weights(path)
    _assert_close(new(x, training=False), want)


def test_uint8_model_under_mixed_precision(mixed_policy):
    m = models.build_model("cvm_net_i", **SMALL)
    assert m.get_layer("network_input_sat").compute_dtype == "float32"
    out = to_numpy(m(_pair(5), training=False))
    assert all(np.isfinite(v).all() for v in out.values())
