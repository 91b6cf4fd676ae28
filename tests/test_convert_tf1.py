"""TF1 checkpoint -> Keras conversion, checked against an independent NumPy forward pass."""
import os
import subprocess
import sys

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from cvmnet_tf.inference import tf1 as convert_tf1  # noqa: E402
from tf1_fixtures import D, VGG, normal, released_tf1_variables, write_tf1_checkpoint  # noqa: E402

SAT, GRD, K, DIM = (32, 32), (16, 64), 4, 16


def _normal(rng, std, shape):
    return normal(rng, std, shape)


def _tf1_variables(model_name, rng):
    return released_tf1_variables(model_name, rng, K, DIM)


def _write_tf1_checkpoint(prefix, values, with_optimizer=True):
    write_tf1_checkpoint(prefix, values, with_optimizer)


# ---------------------------------------------------------------- NumPy reference
def _conv(x, w, b, relu=True):
    """SAME conv, stride 1, x (H, W, C), w (kh, kw, C, O) HWIO, cross-correlation as TF (im2col)."""
    kh, kw, c, o = w.shape
    h, wd = x.shape[:2]
    xp = np.pad(x, ((kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
    cols = np.stack([xp[i:i + h, j:j + wd] for i in range(kh) for j in range(kw)], axis=2)  # (H, W, kh*kw, C)
    y = cols.reshape(h * wd, kh * kw * c) @ w.reshape(kh * kw * c, o).astype(np.float64) + b
    y = y.reshape(h, wd, o)
    return np.maximum(y, 0) if relu else y


def _pool(x):
    h, w, c = x.shape
    return x.reshape(h // 2, 2, w // 2, 2, c).max(axis=(1, 3))


def _l2(x, axis=-1):
    return x / np.sqrt(np.maximum((x ** 2).sum(axis=axis, keepdims=True), 1e-12))


def _vgg(x, v, branch):
    for item in VGG:
        x = _pool(x) if item == "pool" else _conv(x, v[f"{branch}/{item[0]}/weights"], v[f"{branch}/{item[0]}/biases"])
    return x


def _netvlad(x, w, b, c):
    x = _l2(x.reshape(-1, x.shape[-1]).astype(np.float64))
    logits = x @ w + b
    a = np.exp(logits - logits.max(axis=1, keepdims=True))
    a /= a.sum(axis=1, keepdims=True)
    vlad = x.T @ a - a.sum(axis=0)[None, :] * c.reshape(D, K)  # (D, K)
    vlad = _l2(vlad, axis=0)
    return _l2(vlad.reshape(-1))  # index d*K + k


def _reference(model_name, v, sat, grd):
    out = {}
    for key, img, branch, tag in (("satellite", sat, "VGG_sat", "sat"), ("ground", grd, "VGG_grd", "grd")):
        feats = _vgg(img.astype(np.float64), v, branch)
        if model_name == "cvm_net_i":
            vec = _netvlad(feats, v[f"netvlad_{tag}/cluster_weights"], v[f"netvlad_{tag}/cluster_biases"],
                           v[f"netvlad_{tag}/cluster_weights2"])
            vec = vec @ v["dim_reduction/fc1/weights"] + v["dim_reduction/fc1/biases"]
        else:
            x = _conv(feats, v[f"transformation_trans/{tag}_trans_conv1/weights"],
                      v[f"transformation_trans/{tag}_trans_conv1/biases"])
            x = _conv(x, v["transformation_trans_shared/trans_conv1/weights"],
                      v["transformation_trans_shared/trans_conv1/biases"])
            x = _conv(x, v["transformation_trans_shared/trans_conv2/weights"],
                      v["transformation_trans_shared/trans_conv2/biases"])
            vec = _netvlad(x, v["netvlad/cluster_weights"], v["netvlad/cluster_biases"],
                           v["netvlad/cluster_weights2"]) @ v["netvlad/hidden1_weights"]
        out[key] = _l2(vec)
    return out


@pytest.mark.parametrize("model_name", ["cvm_net_i", "cvm_net_ii"])
def test_converted_model_matches_numpy_forward(tmp_path, model_name):
    rng = np.random.default_rng(1 if model_name == "cvm_net_i" else 2)
    values = _tf1_variables(model_name, rng)
    prefix = str(tmp_path / "model.ckpt")
    _write_tf1_checkpoint(prefix, values)
    out_file = str(tmp_path / "converted.keras")
    model = convert_tf1.convert(prefix, model_name, out_file, satellite_size=SAT, ground_size=GRD)
    assert os.path.isfile(out_file)
    assert not [f for f in os.listdir(tmp_path) if ".tmp-" in f]
    # Sizes were inferred from the checkpoint.
    assert model.output["satellite"].shape[-1] == DIM

    sat = _normal(rng, 60, (2,) + SAT + (3,)).astype(np.float32)
    grd = _normal(rng, 60, (2,) + GRD + (3,)).astype(np.float32)
    import keras
    reloaded = keras.saving.load_model(out_file)
    got = reloaded({"satellite": sat, "ground": grd}, training=False)
    for i in range(1):  # the NumPy forward is slow; row 0 is enough (row 1 is a batch-mate)
        ref = _reference(model_name, values, sat[i], grd[i])
        for key in ("satellite", "ground"):
            np.testing.assert_allclose(np.asarray(got[key])[i], ref[key], atol=2e-5, rtol=1e-4)
    # Shared layers really are shared: one trainable weight set for the shared ones.
    if model_name == "cvm_net_ii":
        np.testing.assert_array_equal(reloaded.get_layer("trans_conv1").kernel.numpy(),
                                      values["transformation_trans_shared/trans_conv1/weights"])
        np.testing.assert_array_equal(reloaded.get_layer("netvlad").cluster_weights2.numpy(),
                                      values["netvlad/cluster_weights2"][0])


def test_mismatch_and_missing_and_other_model_are_clear_errors(tmp_path):
    """Checked on the name -> shape map (reading a real TF1 file is covered above)."""
    from cvmnet_tf import models
    rng = np.random.default_rng(3)
    values = _tf1_variables("cvm_net_i", rng)
    del values["VGG_sat/conv5_3/biases"]
    values["VGG_grd/conv1_1/weights"] = values["VGG_grd/conv1_1/weights"][:, :, :, :32]
    values["VGG_grd/conv1_1/weights/Adam"] = values["VGG_grd/conv1_1/weights"]  # ignored
    values["beta1_power"] = np.float32(0.9)
    shapes = {k: np.shape(v) for k, v in values.items()}
    model = models.cvm_net_i(SAT, GRD, num_clusters=K, descriptor_dim=DIM)
    before = model.get_layer("VGG_sat").get_layer("conv1_1").kernel.numpy()
    with pytest.raises(convert_tf1.ConversionError) as err:
        convert_tf1.assign_tf1_weights(model, "cvm_net_i", shapes, values.__getitem__)
    msg = str(err.value)
    assert "VGG_sat/conv5_3/biases" in msg and "VGG_grd/conv1_1/weights" in msg and "(3, 3, 3, 32)" in msg
    assert "Adam" not in msg and "beta1_power" not in msg
    # Nothing was assigned on failure.
    np.testing.assert_array_equal(model.get_layer("VGG_sat").get_layer("conv1_1").kernel.numpy(), before)
    # A CVM-Net-I checkpoint is not a CVM-Net-II one: missing and unused variables are listed.
    model2 = models.cvm_net_ii(SAT, GRD, num_clusters=K, descriptor_dim=DIM)
    with pytest.raises(convert_tf1.ConversionError, match="missing.*netvlad/hidden1_weights") as err:
        convert_tf1.assign_tf1_weights(model2, "cvm_net_ii", shapes, values.__getitem__)
    assert "not used by cvm_net_ii" in str(err.value) and "dim_reduction/fc1/weights" in str(err.value)
    out_file = str(tmp_path / "out.keras")
    with pytest.raises(convert_tf1.ConversionError, match="no TF1 checkpoint"):
        convert_tf1.convert(str(tmp_path / "nope.ckpt"), "cvm_net_i", out_file)
    with pytest.raises(convert_tf1.ConversionError, match="only has"):
        convert_tf1.convert(str(tmp_path / "nope.ckpt"), "siamese_vgg", out_file)
    assert os.listdir(tmp_path) == []


def test_cli_reports_error_without_output(tmp_path):
    out_file = tmp_path / "x.keras"
    proc = subprocess.run([sys.executable, "-m", "cvmnet_tf.convert_tf1", f"--tf1_checkpoint={tmp_path}/missing.ckpt",
                           "--model=cvm_net_i", f"--output={out_file}"],
                          capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(__file__)),
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), timeout=120)
    assert proc.returncode != 0
    assert "no TF1 checkpoint" in proc.stderr + proc.stdout
    assert not out_file.exists()
