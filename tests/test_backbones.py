"""VGG16 / AlexNet backbones: layout, frozen split, dropout placement, weight loading."""
import os

import numpy as np
import pytest

import keras

from cvmnet_tf.models import backbones
from cvmnet_tf.layers import LocalResponseNormalization
from harness import run_layer_test

pytestmark = pytest.mark.backend_agnostic

VGG_CHANNELS = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256),
                (256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]
VGG_NAMES = ["conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3",
             "conv4_1", "conv4_2", "conv4_3", "conv5_1", "conv5_2", "conv5_3"]


def _conv_params(k, cin, cout, groups=1):
    return k * k * (cin // groups) * cout + cout


def test_vgg16_layout_trainable_split_and_dropout():
    model = backbones.vgg16(input_shape=(33, 49, 3), dropout_rate=0.2, name="VGG_sat")
    assert model.name == "VGG_sat"
    assert model.output_shape == (None, 3, 4, 512)  # ceil(H/16): SAME pools, no pool5
    names = [layer.name for layer in model.layers]
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.name for c in convs] == VGG_NAMES
    assert [c.trainable for c in convs] == [False] * 7 + [True] * 6
    pools = [layer.name for layer in model.layers if isinstance(layer, keras.layers.MaxPooling2D)]
    assert pools == ["pool1", "pool2", "pool3", "pool4"]
    # Dropout (rate 0.2) directly after every trainable conv and nowhere else,
    # including after conv4_3 (before pool4) and after conv5_3 (the output).
    for i, layer in enumerate(model.layers):
        if isinstance(layer, keras.layers.Dropout):
            assert names[i - 1] in VGG_NAMES[7:] and layer.rate == pytest.approx(0.2)
            assert layer.name == names[i - 1] + "_dropout"
    assert [n for n in names if n.endswith("_dropout")] == [n + "_dropout" for n in VGG_NAMES[7:]]
    assert names[names.index("conv4_3") + 2] == "pool4"
    assert names[-1] == "conv5_3_dropout"
    total = sum(_conv_params(3, cin, cout) for cin, cout in VGG_CHANNELS)
    frozen = sum(_conv_params(3, cin, cout) for cin, cout in VGG_CHANNELS[:7])
    assert model.count_params() == total == 14_714_688
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == total - frozen
    # relu + dropout only active in training: eval output is deterministic and >= 0
    x = np.random.default_rng(0).normal(size=(1, 33, 49, 3)).astype("float32") * 50
    a, b = np.asarray(model(x, training=False)), np.asarray(model(x, training=False))
    np.testing.assert_array_equal(a, b)
    assert a.min() >= 0.0


def test_vgg16_loads_local_keras_weights_file(tmp_path):
    reference = keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3))
    path = os.path.join(tmp_path, "vgg16_notop.weights.h5")
    reference.save_weights(path)
    model = backbones.vgg16(input_shape=(32, 32, 3), weights=path, name="VGG_grd")
    ref_convs = [l for l in reference.layers if isinstance(l, keras.layers.Conv2D)]
    for ref, name in zip(ref_convs, VGG_NAMES):
        got = model.get_layer(name).get_weights()
        want = ref.get_weights()
        assert len(got) == 2
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
    # Same features as Keras' block5_conv3 (our output is conv5_3 -> dropout, off at eval).
    block5 = keras.Model(reference.input, reference.get_layer("block5_conv3").output)
    x = np.random.default_rng(1).normal(size=(2, 32, 32, 3)).astype("float32") * 50
    np.testing.assert_allclose(np.asarray(model(x, training=False)), np.asarray(block5(x)),
                               rtol=1e-5, atol=1e-4)


def test_vgg16_imagenet_copies_keras_weights(monkeypatch):
    """weights='imagenet' path without network: Keras' VGG16 is replaced by a local one."""
    calls = []
    real_vgg16 = keras.applications.VGG16

    def fake_vgg16(**kwargs):
        calls.append(kwargs)
        keras.utils.set_random_seed(7)
        return real_vgg16(**dict(kwargs, weights=None))

    monkeypatch.setattr(keras.applications, "VGG16", fake_vgg16)
    model = backbones.vgg16(input_shape=(None, None, 3), weights="imagenet")
    assert calls and calls[0]["weights"] == "imagenet" and calls[0]["include_top"] is False
    keras.utils.set_random_seed(7)
    want = real_vgg16(weights=None, include_top=False, input_shape=(None, None, 3))
    for got_w, want_w in zip(model.get_weights(), want.get_weights()):
        np.testing.assert_array_equal(got_w, want_w)
    assert len(model.get_weights()) == len(want.get_weights()) == 26


def test_vgg16_weight_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="weights"):
        backbones.vgg16(input_shape=(32, 32, 3), weights=os.path.join(tmp_path, "missing.h5"))
    bad = os.path.join(tmp_path, "weights.bin")
    with open(bad, "wb") as f:
        f.write(b"not weights")
    with pytest.raises(ValueError, match=r"\.h5"):
        backbones.vgg16(input_shape=(32, 32, 3), weights=bad)
    with pytest.raises(ValueError, match="dropout_rate"):
        backbones.vgg16(dropout_rate=1.0)


def _np_lrn(x, r=2, bias=1.0, alpha=2e-5, beta=0.75):
    c = x.shape[-1]
    out = np.empty_like(x, dtype=np.float64)
    for ch in range(c):
        lo, hi = max(0, ch - r), min(c, ch + r + 1)
        s = np.sum(x[..., lo:hi].astype(np.float64) ** 2, axis=-1)
        out[..., ch] = x[..., ch] / (bias + alpha * s) ** beta
    return out


def test_local_response_normalization_matches_numpy(tmp_path):
    x = np.random.default_rng(2).normal(size=(2, 3, 4, 7)).astype("float32") * 100
    _, out = run_layer_test(lambda: LocalResponseNormalization(depth_radius=2, alpha=1e-3, beta=0.75, bias=2.0,
                                                               name="lrn"),
                            x, tmp_path, expected_output_shape=(2, 3, 4, 7))
    np.testing.assert_allclose(out, _np_lrn(x, 2, 2.0, 1e-3, 0.75), rtol=1e-5)


ALEX_SHAPES = {"conv1": ((11, 11, 3, 96), (96,)), "conv2": ((5, 5, 48, 256), (256,)),
               "conv3": ((3, 3, 256, 384), (384,)), "conv4": ((3, 3, 192, 384), (384,)),
               "conv5": ((3, 3, 192, 256), (256,))}


def test_alexnet_layout_and_params():
    model = backbones.alexnet(input_shape=(67, 99, 3), name="AlexNet_sat")
    # conv1 VALID 11/4 -> 15x23, pool 3/2 -> 7x11, pool -> 3x5
    assert model.output_shape == (None, 3, 5, 256)
    convs = [l for l in model.layers if isinstance(l, keras.layers.Conv2D)]
    assert [c.name for c in convs] == ["conv1", "conv2", "conv3", "conv4", "conv5"]
    assert [c.trainable for c in convs] == [False, False, True, True, True]
    for c in convs:
        assert tuple(c.kernel.shape) == ALEX_SHAPES[c.name][0]
    expected = (_conv_params(11, 3, 96) + _conv_params(5, 96, 256, 2) + _conv_params(3, 256, 384)
                + _conv_params(3, 384, 384, 2) + _conv_params(3, 384, 256, 2))
    assert model.count_params() == expected == 2_334_080
    dropouts = [l.name for l in model.layers if isinstance(l, keras.layers.Dropout)]
    assert dropouts == ["conv3_dropout", "conv4_dropout", "conv5_dropout"]


def test_alexnet_loads_bvlc_npy_and_rejects_imagenet(tmp_path):
    rng = np.random.default_rng(3)
    data = {name: [rng.normal(size=k).astype("float32"), rng.normal(size=b).astype("float32")]
            for name, (k, b) in ALEX_SHAPES.items()}
    data["fc6"] = [np.zeros((4, 4), np.float32), np.zeros((4,), np.float32)]  # ignored
    path = os.path.join(tmp_path, "bvlc_alexnet.npy")
    np.save(path, data, allow_pickle=True)
    model = backbones.alexnet(input_shape=(67, 67, 3), weights=path)
    for name, (kernel, bias) in data.items():
        if name == "fc6":
            continue
        got = model.get_layer(name).get_weights()
        np.testing.assert_array_equal(got[0], kernel)
        np.testing.assert_array_equal(got[1], bias)
    # dict-of-dicts variant and a wrong shape
    data2 = {n: {"weights": k, "biases": b} for n, (k, b) in data.items()}
    data2["conv3"]["weights"] = data2["conv3"]["weights"][:, :, :128]
    path2 = os.path.join(tmp_path, "alexnet_bad.npy")
    np.save(path2, data2, allow_pickle=True)
    with pytest.raises(ValueError, match="conv3"):
        backbones.alexnet(input_shape=(67, 67, 3), weights=path2)
    with pytest.raises(ValueError, match="no ImageNet AlexNet"):
        backbones.alexnet(weights="imagenet")
    with pytest.raises(FileNotFoundError, match="weights"):
        backbones.alexnet(weights=os.path.join(tmp_path, "nope.npy"))
    with pytest.raises(ValueError, match="backbone"):
        backbones.build_backbone("resnet", (32, 32, 3))


def test_width_multiplier_scales_channels_and_freeze_is_optional():
    model = backbones.vgg16(input_shape=(32, 32, 3), width=0.125, freeze_early_layers=False)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [max(1, round(cout / 8)) for _, cout in VGG_CHANNELS]
    assert all(c.trainable for c in convs)
    expected = sum(_conv_params(3, max(1, round(cin / 8)) if cin != 3 else 3, round(cout / 8))
                   for cin, cout in VGG_CHANNELS)
    assert model.count_params() == expected
    assert backbones.feature_channels("vgg16", 0.125) == 64
    alex = backbones.alexnet(input_shape=(67, 67, 3), width=0.25, freeze_early_layers=False)
    assert alex.output_shape[-1] == 64
    with pytest.raises(ValueError, match="width"):
        backbones.vgg16(input_shape=(32, 32, 3), width=0.5, weights="imagenet")
    with pytest.raises(ValueError, match="width"):
        backbones.vgg16(input_shape=(32, 32, 3), width=0.0)
