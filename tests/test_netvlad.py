"""NetVLAD layer against an independent NumPy implementation of the LOUPE math."""
import math

import numpy as np
import pytest

import keras

from cvmnet_tf.layers import L2Normalize, NetVLAD, l2_normalize
from harness import run_layer_test

pytestmark = pytest.mark.backend_agnostic


def _np_l2(x, axis):
    return x / np.sqrt(np.maximum(np.sum(x * x, axis=axis, keepdims=True), 1e-12))


def numpy_netvlad(x, w, b, c, hidden=None):
    """Reference: x (B, H, W, D) float64; w, c (D, K); b (K,); hidden (D*K, out) or None.

    Written per image with explicit residuals sum_n a_nk (x_n - c_k), flattened with
    index d*K + k, to be independent of the layer's einsum formulation.
    """
    x = np.asarray(x, np.float64)
    batch, h, wd, d = x.shape
    k = w.shape[1]
    out = []
    for i in range(batch):
        feats = _np_l2(x[i].reshape(h * wd, d), axis=1)          # (N, D)
        logits = feats @ w + b                                     # (N, K)
        logits -= logits.max(axis=1, keepdims=True)
        a = np.exp(logits)
        a /= a.sum(axis=1, keepdims=True)
        v = np.zeros((d, k))
        for kk in range(k):
            residual = feats - c[:, kk][None, :]                   # (N, D)
            v[:, kk] = (a[:, kk][:, None] * residual).sum(axis=0)
        v = _np_l2(v, axis=0)                                      # intra-normalisation
        flat = np.array([v[dd, kk] for dd in range(d) for kk in range(k)])
        flat = _np_l2(flat, axis=0)
        if hidden is not None:
            flat = flat @ hidden
        out.append(flat)
    return np.stack(out)


def _set_random_weights(layer, rng, scale=1.0):
    values = [rng.normal(0.0, scale, size=tuple(v.shape)).astype("float32") for v in layer.weights]
    layer.set_weights(values)
    return values


@pytest.mark.parametrize("output_dim", [None, 6])
def test_matches_numpy_two_spatial_sizes(output_dim):
    rng = np.random.default_rng(0)
    d, k = 8, 5
    layer = NetVLAD(num_clusters=k, output_dim=output_dim)
    inp = keras.Input(shape=(None, None, d))
    model = keras.Model(inp, layer(inp))
    # Large-ish weights so the soft assignment is far from uniform.
    values = _set_random_weights(layer, rng, scale=2.0)
    w, b, c = (v.astype(np.float64) for v in values[:3])
    hidden = values[3].astype(np.float64) if output_dim is not None else None
    for shape in [(3, 3, 4, d), (2, 5, 2, d)]:
        x = rng.normal(size=shape).astype("float32") * 3.0
        got = np.asarray(model(x))
        want = numpy_netvlad(x, w, b, c, hidden)
        assert got.shape == (shape[0], output_dim or d * k)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    if output_dim is None:
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)


def test_flatten_order_is_d_major():
    """Index d*K + k: with a single feature and one dominant cluster, V[:, k] = x - c_k."""
    d, k = 3, 2
    layer = NetVLAD(num_clusters=k)
    layer.build((None, 1, 1, d))
    w = np.zeros((d, k), np.float32)
    b = np.array([50.0, -50.0], np.float32)          # all mass on cluster 0
    c = np.array([[0.0, 0.5], [0.0, 0.0], [0.0, 0.0]], np.float32)
    layer.set_weights([w, b, c])
    x = np.array([[[[1.0, 2.0, 2.0]]]], np.float32)  # unit vector (1, 2, 2) / 3 after l2
    got = np.asarray(layer(x))[0]
    # cluster 0 residual = x/3, cluster 1 residual = 0 (a=0) -> [x0, 0, x1, 0, x2, 0] / 1
    np.testing.assert_allclose(got, [1 / 3, 0.0, 2 / 3, 0.0, 2 / 3, 0.0], atol=1e-6)


def test_weight_names_shapes_and_init_scale():
    d, k, out = 64, 16, 32
    layer = NetVLAD(num_clusters=k, output_dim=out, name="netvlad")
    layer.build((None, None, None, d))
    shapes = {v.path.split("/")[-1]: tuple(v.shape) for v in layer.weights}
    assert shapes == {"cluster_weights": (d, k), "cluster_biases": (k,),
                      "cluster_weights2": (d, k), "hidden1_weights": (d * k, out)}
    values = {v.path.split("/")[-1]: np.asarray(v) for v in layer.weights}
    # stddev 1/sqrt(D) = 0.125 for cluster weights/centres, 1/sqrt(K) = 0.25 for hidden1.
    for name, std in [("cluster_weights", 1 / math.sqrt(d)), ("cluster_weights2", 1 / math.sqrt(d)),
                      ("hidden1_weights", 1 / math.sqrt(k))]:
        assert abs(values[name].std() / std - 1.0) < 0.06, name
        assert abs(values[name].mean()) < 0.1 * std, name
    # plain (not truncated) normal: some values beyond 2 std for hidden1 (32768 samples)
    assert np.abs(values["hidden1_weights"]).max() > 3.0 / math.sqrt(k)


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_clusters"):
        NetVLAD(num_clusters=0)
    with pytest.raises(ValueError, match="output_dim"):
        NetVLAD(num_clusters=4, output_dim=-3)
    with pytest.raises(ValueError, match="known D"):
        NetVLAD(num_clusters=4).build((None, 3, 3, None))


def test_l2_normalize_matches_tf_formula():
    x = np.array([[3.0, 4.0], [0.0, 0.0], [1e-7, 0.0]], np.float32)
    got = np.asarray(l2_normalize(keras.ops.convert_to_tensor(x), axis=-1))
    # x / sqrt(max(sum x^2, 1e-12)): tiny vectors are divided by 1e-6, zero stays zero.
    np.testing.assert_allclose(got, [[0.6, 0.8], [0.0, 0.0], [0.1, 0.0]], rtol=1e-6)


def test_mixed_precision_runs_in_float32(mixed_policy):
    rng = np.random.default_rng(1)
    layer = NetVLAD(num_clusters=4, output_dim=5)
    norm = L2Normalize()
    assert layer.compute_dtype == "float32" and layer.variable_dtype == "float32"
    assert norm.compute_dtype == "float32"
    x = rng.normal(size=(2, 3, 3, 6)).astype("float16")
    out = layer(keras.ops.convert_to_tensor(x))
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    weights = [np.asarray(v, np.float64) for v in layer.weights]
    want = numpy_netvlad(x.astype(np.float64), *weights[:3], weights[3])
    np.testing.assert_allclose(np.asarray(out), want, rtol=1e-5, atol=1e-5)
    unit = norm(out)
    assert keras.backend.standardize_dtype(unit.dtype) == "float32"
    np.testing.assert_allclose(np.linalg.norm(np.asarray(unit), axis=1), 1.0, atol=1e-6)


@pytest.mark.parametrize("output_dim", [None, 7])
def test_keras_round_trip(tmp_path, output_dim):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 3, 5, 6)).astype("float32")
    layer, out = run_layer_test(lambda: NetVLAD(num_clusters=4, output_dim=output_dim, name="netvlad"), x, tmp_path,
                                expected_output_shape=(2, output_dim or 24),
                                set_weights=lambda lay: _set_random_weights(lay, rng))
    assert layer.get_config()["num_clusters"] == 4
    assert layer.get_config()["output_dim"] == output_dim
    weights = [np.asarray(v, np.float64) for v in layer.weights]
    want = numpy_netvlad(x, *weights[:3], weights[3] if output_dim else None)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)


def test_l2_normalize_layer_passes_the_harness(tmp_path):
    x = np.random.default_rng(4).normal(size=(3, 5)).astype("float32")
    _, out = run_layer_test(lambda: L2Normalize(name="l2"), x, tmp_path, expected_output_shape=(3, 5))
    np.testing.assert_allclose(out, _np_l2(x.astype(np.float64), axis=1), rtol=1e-6)
