"""CVM-Net-I, CVM-Net-II and Siamese models: wiring, sharing, gradients, precision, saving."""
import os

import numpy as np
import pytest

import keras
from keras import ops

from cvmnet_tf import models
from cvmnet_tf.layers import NetVLAD
from harness import run_model_saving_test

pytestmark = pytest.mark.backend_agnostic

SAT, GRD = (64, 64), (32, 128)
ALEX_GRD = (80, 144)  # AlexNet's VALID conv1/pools need >= 67 pixels
TINY = {
    "cvm_net_i": dict(satellite_shape=SAT, ground_shape=GRD, num_clusters=4, descriptor_dim=32),
    "cvm_net_ii": dict(satellite_shape=SAT, ground_shape=GRD, num_clusters=4, descriptor_dim=32),
    "siamese_vgg": dict(satellite_shape=SAT, ground_shape=GRD, descriptor_dim=32),
    "siamese_alexnet": dict(satellite_shape=(72, 72), ground_shape=ALEX_GRD, descriptor_dim=32),
}
# the layer every branch shares (its weights must exist once)
SHARED = {"cvm_net_i": "dim_reduction", "cvm_net_ii": "netvlad", "siamese_vgg": "dim_reduction",
          "siamese_alexnet": "dim_reduction"}


def _inputs(name, batch=3, seed=0):
    rng = np.random.default_rng(seed)
    kw = TINY[name]
    return {"satellite": (rng.normal(size=(batch,) + kw["satellite_shape"] + (3,)) * 50).astype("float32"),
            "ground": (rng.normal(size=(batch,) + kw["ground_shape"] + (3,)) * 50).astype("float32")}


def _np(x):
    return np.asarray(ops.convert_to_numpy(x), np.float64)


def _np_l2(x):
    return x / np.sqrt(np.maximum(np.sum(x * x, axis=-1, keepdims=True), 1e-12))


# ---------------------------------------------------------------------------------- counts
VGG = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256),
       (256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]


def _conv(k, cin, cout):
    return k * k * cin * cout + cout


@pytest.fixture
def zero_init(monkeypatch):
    """Skip drawing ~300M random numbers: counting parameters needs shapes only."""
    def zeros(self, shape, dtype=None):
        return ops.zeros(shape, dtype=dtype or "float32")
    for cls in (keras.initializers.RandomNormal, keras.initializers.TruncatedNormal,
                keras.initializers.GlorotUniform):
        monkeypatch.setattr(cls, "__call__", zeros)


def test_parameter_counts_at_paper_size(zero_init):
    vgg = sum(_conv(3, a, b) for a, b in VGG)
    vgg_frozen = sum(_conv(3, a, b) for a, b in VGG[:7])
    d, k, dim = 512, 64, 4096
    netvlad = d * k + k + d * k                 # cluster_weights, cluster_biases, cluster_weights2
    fc = d * k * dim + dim                      # shared dim_reduction 32768 -> 4096
    want_i = 2 * vgg + 2 * netvlad + fc
    trans = 2 * _conv(1, 512, 512) + _conv(3, 512, 512) + _conv(1, 512, 512)
    want_ii = 2 * vgg + trans + netvlad + d * k * dim  # one NetVLAD + hidden1_weights
    assert want_i == 163_782_400 and want_ii == 166_860_480
    for build, want in [(models.cvm_net_i, want_i), (models.cvm_net_ii, want_ii)]:
        model = build()  # 512x512 satellite, 224x1232 ground, K=64, 4096-d
        assert model.count_params() == want
        trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
        assert trainable == want - 2 * vgg_frozen
        assert {k: tuple(v.shape) for k, v in model.output.items()} == {
            "satellite": (None, dim), "ground": (None, dim)}
        del model
        keras.backend.clear_session()


# ---------------------------------------------------------------------------------- wiring
@pytest.mark.parametrize("name", list(TINY))
def test_outputs_encoders_sharing_and_keras_round_trip(tmp_path, name):
    model = models.build_model(name, **TINY[name])
    x = _inputs(name)
    out = model(x, training=False)
    assert set(out) == {"satellite", "ground"}
    for key in out:
        assert keras.backend.standardize_dtype(out[key].dtype) == "float32"
        assert tuple(out[key].shape) == (3, 32)
        np.testing.assert_allclose(np.linalg.norm(_np(out[key]), axis=1), 1.0, atol=1e-5)
    grd_enc, sat_enc = models.ground_encoder(model), models.satellite_encoder(model)
    np.testing.assert_allclose(_np(grd_enc(x["ground"])), _np(out["ground"]), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(_np(sat_enc(x["satellite"])), _np(out["satellite"]), rtol=1e-6, atol=1e-6)
    shared = model.get_layer(SHARED[name])
    assert grd_enc.get_layer(SHARED[name]) is shared is sat_enc.get_layer(SHARED[name])
    # every weight exists once; the encoders own no copies
    ids = [id(w) for w in model.weights]
    assert len(ids) == len(set(ids))
    assert {id(w) for w in grd_enc.weights} | {id(w) for w in sat_enc.weights} == set(ids)

    # .keras round trip: the file describes the architecture, shared layers stay shared
    run_model_saving_test(model, x, tmp_path, shared_layers=[SHARED[name]],
                          encoders=(models.ground_encoder, models.satellite_encoder))


def test_cvm_net_i_composition_matches_numpy():
    model = models.cvm_net_i(**TINY["cvm_net_i"])
    x = _inputs("cvm_net_i")
    out = model(x, training=False)
    fc_w, fc_b = (np.asarray(w, np.float64) for w in model.get_layer("dim_reduction").get_weights())
    assert fc_w.shape == (512 * 4, 32)
    for key, tag in (("satellite", "sat"), ("ground", "grd")):
        feats = model.get_layer(f"VGG_{tag}")(x[key], training=False)
        vlad = _np(model.get_layer(f"netvlad_{tag}")(feats))
        np.testing.assert_allclose(_np(out[key]), _np_l2(vlad @ fc_w + fc_b), rtol=1e-4, atol=1e-5)
    # initialisers of the shared FC: truncated normal std 0.005 (|w| <= 2 std), bias 0.1
    assert abs(fc_w.std() / (0.005 * 0.88) - 1) < 0.05 and np.abs(fc_w).max() <= 0.01 + 1e-7
    np.testing.assert_array_equal(fc_b, np.full(32, np.float32(0.1), np.float64))
    assert model.get_layer("netvlad_sat") is not model.get_layer("netvlad_grd")
    assert model.get_layer("VGG_sat") is not model.get_layer("VGG_grd")


def test_cvm_net_ii_normalize_flag_and_wiring():
    kw = TINY["cvm_net_ii"]
    norm = models.cvm_net_ii(**kw)
    raw = models.cvm_net_ii(**kw, normalize_output=False)
    raw.set_weights(norm.get_weights())
    x = _inputs("cvm_net_ii")
    a, b = norm(x, training=False), raw(x, training=False)
    for key in ("satellite", "ground"):
        raw_np = _np(b[key])
        assert np.abs(np.linalg.norm(raw_np, axis=1) - 1).max() > 1e-3  # released: not unit
        np.testing.assert_allclose(_np(a[key]), _np_l2(raw_np), rtol=1e-5, atol=1e-6)
    # raw output = shared NetVLAD(trans_conv2(trans_conv1(<branch>_trans_conv1(VGG))))
    nv = raw.get_layer("netvlad")
    assert isinstance(nv, NetVLAD) and nv.output_dim == 32 and nv.num_clusters == 4
    feats = raw.get_layer("VGG_grd")(x["ground"], training=False)
    h = raw.get_layer("trans_conv2")(raw.get_layer("trans_conv1")(raw.get_layer("grd_trans_conv1")(feats)))
    np.testing.assert_allclose(_np(nv(h)), _np(b["ground"]), rtol=1e-4, atol=1e-5)
    assert tuple(raw.get_layer("trans_conv1").kernel.shape) == (3, 3, 512, 512)
    assert tuple(raw.get_layer("sat_trans_conv1").kernel.shape) == (1, 1, 512, 512)
    # dropout (rate 0.2) is active in training only
    t1 = _np(raw(x, training=True)["ground"])
    np.testing.assert_array_equal(_np(raw(x, training=False)["ground"]), _np(b["ground"]))
    assert np.abs(t1 - _np(b["ground"])).max() > 1e-4


def test_build_model_errors():
    with pytest.raises(ValueError, match="unknown model"):
        models.build_model("cvm_net_iii")
    with pytest.raises(ValueError, match="backbone"):
        models.cvm_net_i(**TINY["cvm_net_i"], backbone="resnet50")
    with pytest.raises(ValueError, match="normalize_output"):
        models.build_model("siamese_vgg", normalize_output=False, **TINY["siamese_vgg"])
    with pytest.raises(ValueError, match="descriptor_dim"):
        models.cvm_net_ii(descriptor_dim=0)
    with pytest.raises(ValueError, match="no ImageNet AlexNet"):
        models.build_model("siamese_alexnet", weights="imagenet")
    with pytest.raises(ValueError, match="implies backbone='vgg16'"):
        models.build_model("siamese_vgg", backbone="alexnet", **TINY["siamese_vgg"])
    with pytest.raises(ValueError, match="no argument.*temperature"):
        models.build_model("cvm_net_i", temperature=0.1)


def test_registry_lists_every_model_and_config_builds_it():
    assert models.MODEL_NAMES == ("cvm_net_i", "cvm_net_ii", "siamese_vgg", "siamese_alexnet")
    assert set(models.model_arguments("siamese_vgg")) == {
        "satellite_shape", "ground_shape", "descriptor_dim", "dropout_rate", "weights", "width",
        "freeze_early_layers", "polar_satellite", "polar_size", "init", "input_dtype"}
    config = {"model": "siamese_vgg", "satellite_size": [64, 64], "ground_size": [32, 128], "num_clusters": 8,
              "descriptor_dim": 32, "dropout_rate": 0.2, "backbone": None, "weights": "none", "width": 1.0,
              "freeze_early_layers": True, "normalize_output": True}
    model = models.build_model_from_config(config)  # num_clusters / normalize_output: not Siamese arguments
    assert isinstance(model, models.SiameseBaseline) and model.name == "siamese_vgg"
    assert dict(model.architecture_arguments)["backbone"] == "vgg16"
    assert models.describe_model(model, "x")["descriptor_dim"] == 32


def test_cvm_net_backbone_is_a_choice(tmp_path):
    kw = dict(TINY["cvm_net_i"], satellite_shape=(72, 72), ground_shape=ALEX_GRD, width=0.25)
    model = models.build_model("cvm_net_i", backbone="alexnet", **kw)
    assert model.get_layer("AlexNet_grd").output.shape[-1] == 64  # 256 channels x 0.25
    assert model.get_layer("netvlad_grd").cluster_weights.shape == (64, 4)
    x = {"satellite": np.zeros((1, 72, 72, 3), "float32"), "ground": np.zeros((1,) + ALEX_GRD + (3,), "float32")}
    loaded = run_model_saving_test(model, x, tmp_path, shared_layers=["dim_reduction"])
    assert loaded.get_config()["backbone"] == "alexnet"


def test_mixed_precision_model_reloads_mixed(mixed_policy, tmp_path):
    model = models.build_model("cvm_net_i", **dict(TINY["cvm_net_i"], satellite_shape=(32, 32),
                                                   ground_shape=(16, 64), width=0.125))
    assert model.get_config()["dtype"] == "mixed_float16"
    path = os.path.join(tmp_path, "m.keras")
    model.save(path)
    keras.config.set_dtype_policy("float32")  # loading does not depend on the global policy
    loaded = keras.saving.load_model(path)
    assert loaded.get_layer("VGG_grd").get_layer("conv5_3").compute_dtype == "float16"
    assert loaded.get_layer("dim_reduction").compute_dtype == "float32"


# ------------------------------------------------------------------------------- training
class _PairTrainer(keras.Model):
    """Wraps a two-branch model so compile/train_on_batch can use one custom loss."""

    def __init__(self, net, **kwargs):
        super().__init__(**kwargs)
        self.net = net

    def call(self, inputs, training=False):
        out = self.net(inputs, training=training)
        return ops.concatenate([out["satellite"], out["ground"]], axis=-1)


def _soft_margin_loss(y_true, y_pred):
    dim = y_pred.shape[-1] // 2
    sat, grd = ops.cast(y_pred[:, :dim], "float32"), ops.cast(y_pred[:, dim:], "float32")
    dist = 2.0 - 2.0 * ops.matmul(grd, ops.transpose(sat))
    pos = ops.diagonal(dist)
    return ops.mean(ops.log(1.0 + ops.exp(10.0 * (pos[:, None] - dist)))) + 0.0 * ops.mean(y_true)


def _one_adam_step(model, x):
    """One Adam step; Adam's first update is ~lr*sign(grad), so any non-zero gradient moves a weight."""
    before_t = [np.array(w) for w in model.trainable_weights]
    before_n = [np.array(w) for w in model.non_trainable_weights]
    trainer = _PairTrainer(model, name="pair_trainer")
    trainer.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3), loss=_soft_margin_loss,
                    run_eagerly=keras.backend.backend() == "tensorflow")
    loss = trainer.train_on_batch(x, np.zeros((len(x["ground"]), 1), np.float32))
    assert np.isfinite(loss)
    for w, old in zip(model.trainable_weights, before_t):
        new = np.array(w)
        assert np.all(np.isfinite(new)), w.path
        assert np.abs(new - old).max() > 1e-5, f"no gradient reached {w.path}"
    for w, old in zip(model.non_trainable_weights, before_n):
        np.testing.assert_array_equal(np.array(w), old)  # frozen conv1_1..conv3_3


@pytest.mark.parametrize("name", ["cvm_net_i", "cvm_net_ii", "siamese_alexnet"])
def test_gradients_reach_every_trainable_weight(name):
    keras.utils.set_random_seed(0)
    model = models.build_model(name, **TINY[name])
    assert len(model.non_trainable_weights) == (8 if name == "siamese_alexnet" else 28)
    _one_adam_step(model, _inputs(name, batch=3, seed=4))


@pytest.mark.parametrize("name", ["cvm_net_i", "cvm_net_ii"])
def test_mixed_precision_forward_and_step(mixed_policy, name):
    keras.utils.set_random_seed(1)
    kw = dict(TINY[name], satellite_shape=(32, 32), ground_shape=(16, 64))  # float16 is slow on CPU
    model = models.build_model(name, **kw)
    assert model.get_layer("VGG_grd").get_layer("conv5_3").compute_dtype == "float16"
    precise = "dim_reduction" if name == "cvm_net_i" else "netvlad"
    assert model.get_layer(precise).compute_dtype == "float32"
    rng = np.random.default_rng(5)
    x = {"satellite": (rng.normal(size=(2, 32, 32, 3)) * 50).astype("float32"),
         "ground": (rng.normal(size=(2, 16, 64, 3)) * 50).astype("float32")}
    out = model(x, training=False)
    for key in ("satellite", "ground"):
        assert keras.backend.standardize_dtype(out[key].dtype) == "float32"
        v = _np(out[key])
        assert np.all(np.isfinite(v))
        np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    _one_adam_step(model, x)
    after = model(x, training=False)
    for key in ("satellite", "ground"):
        v = _np(after[key])
        assert keras.backend.standardize_dtype(after[key].dtype) == "float32"
        assert np.all(np.isfinite(v))
        np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
