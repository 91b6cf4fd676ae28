"""SavedModel export: raw uint8 in, the package's preprocessing inside, Keras-equal output."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from cvmnet_tf import models  # noqa: E402
from cvmnet_tf.inference import serving  # noqa: E402
from cvmnet_tf.inference.checkpoints import CheckpointError, load_model  # noqa: E402
from cvmnet_tf.data import preprocessing as pp  # noqa: E402
from cvmnet_tf.training import checkpoints  # noqa: E402

SAT, GRD = (32, 32), (16, 64)


def make_checkpoint(root, model_name="cvm_net_i", dataset="cvact", epoch=3, seed=0):
    """A training-layout checkpoint of a tiny random model; returns (folder, model)."""
    import keras
    keras.utils.set_random_seed(seed)
    kwargs = dict(satellite_shape=SAT, ground_shape=GRD, descriptor_dim=16)
    if model_name.startswith("cvm"):
        kwargs["num_clusters"] = 4
    model = models.build_model(model_name, **kwargs)
    config = {"model": model_name, "satellite_size": list(SAT), "ground_size": list(GRD),
              "num_clusters": 4, "descriptor_dim": 16, "dataset": dataset}
    path = checkpoints.save_checkpoint(str(root), model, None, epoch, {"config": config})
    return path, model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    ckpt, model = make_checkpoint(root / "run")
    out = str(root / "saved")
    info = serving.export_saved_model(ckpt, out)
    return ckpt, model, out, info


def test_export_layout_and_info(exported):
    ckpt, model, out, info = exported
    assert os.path.isfile(os.path.join(out, "saved_model.pb"))
    assert not [p for p in os.listdir(os.path.dirname(out)) if ".tmp-" in p]
    with open(os.path.join(out, serving.EXPORT_INFO_FILE)) as f:
        saved = json.load(f)
    assert saved["model"] == "cvm_net_i" and saved["dataset"] == "cvact"  # from state.json
    assert saved["satellite_size"] == list(SAT) and saved["ground_size"] == list(GRD)
    assert saved["descriptor_dim"] == 16


def test_saved_model_loads_without_package_and_matches_keras(exported, tmp_path):
    _, model, out, _ = exported
    rng = np.random.default_rng(0)
    # Raw images of sizes other than the model's: the SavedModel must preprocess them.
    sat = rng.integers(0, 256, (3, 45, 50, 3), dtype=np.uint8)
    grd = rng.integers(0, 256, (2, 40, 100, 3), dtype=np.uint8)  # CVACT: central half of rows
    np.save(tmp_path / "sat.npy", sat)
    np.save(tmp_path / "grd.npy", grd)
    script = textwrap.dedent(f"""
        import sys, numpy as np
        sys.path = [p for p in sys.path if p not in ("", ".", {os.path.dirname(os.path.dirname(__file__))!r})]
        import tensorflow as tf
        m = tf.saved_model.load({out!r})
        s = m.signatures["satellite"](images=tf.constant(np.load("sat.npy")))["descriptor"].numpy()
        g = m.signatures["ground"](images=tf.constant(np.load("grd.npy")))["descriptor"].numpy()
        g2 = m.ground(tf.constant(np.load("grd.npy")))["descriptor"].numpy()
        assert "cvmnet_tf" not in sys.modules, "the SavedModel imported cvmnet_tf"
        np.save("s_out.npy", s); np.save("g_out.npy", g); np.save("g2_out.npy", g2)
        print("dtypes", s.dtype, g.dtype)
    """)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "dtypes float32 float32" in proc.stdout

    # The same images through the package's evaluation preprocessing and the Keras model.
    sat_in = np.stack([pp.preprocess_satellite(tf.constant(im), SAT, training=False).numpy() for im in sat])
    h = grd.shape[1]
    grd_crop = grd[:, h // 4: h // 4 + h // 2]  # CVACT rule, independently
    grd_in = np.stack([pp.to_network_input(tf.image.resize(im, GRD, method="area")).numpy() for im in grd_crop])
    ref = model({"satellite": sat_in, "ground": grd_in}, training=False)
    np.testing.assert_allclose(np.load(tmp_path / "s_out.npy"), np.asarray(ref["satellite"]), atol=1e-5)
    np.testing.assert_allclose(np.load(tmp_path / "g_out.npy"), np.asarray(ref["ground"]), atol=1e-5)
    np.testing.assert_allclose(np.load(tmp_path / "g2_out.npy"), np.asarray(ref["ground"]), atol=1e-5)
    # Not a degenerate model: different images give different unit descriptors.
    s = np.load(tmp_path / "s_out.npy")
    np.testing.assert_allclose(np.linalg.norm(s, axis=1), 1.0, atol=1e-5)
    assert np.abs(s[0] - s[1]).max() > 1e-3


def test_cvusa_exact_size_passes_unchanged_and_bgr(tmp_path):
    """dataset=cvusa: a panorama of the model's size is not resized; channel order BGR."""
    ckpt, model = make_checkpoint(tmp_path / "run", dataset="cvusa", seed=1)
    loaded_model, info = load_model(ckpt)
    module = serving.make_serving_module(loaded_model, info["satellite_size"], info["ground_size"], "cvusa")
    rng = np.random.default_rng(1)
    grd = rng.integers(0, 256, (2,) + GRD + (3,), dtype=np.uint8)
    got = module.ground(tf.constant(grd))["descriptor"].numpy()
    means = np.array([103.939, 116.779, 123.6], np.float32)
    ref = model.predict_on_batch({"satellite": np.zeros((2,) + SAT + (3,), np.float32),
                                  "ground": grd[..., ::-1].astype(np.float32) - means})
    np.testing.assert_allclose(got, ref["ground"], atol=1e-5)
    wrong = model.predict_on_batch({"satellite": np.zeros((2,) + SAT + (3,), np.float32),
                                    "ground": grd.astype(np.float32) - means[::-1]})
    assert np.abs(got - wrong["ground"]).max() > 1e-4  # RGB order would be caught


def test_bad_checkpoints_leave_no_output(tmp_path):
    out = str(tmp_path / "saved")
    with pytest.raises(CheckpointError, match="does not exist"):
        serving.export_saved_model(str(tmp_path / "nope"), out)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="model.keras is missing"):
        serving.export_saved_model(str(tmp_path / "empty"), out)
    # A checkpoint whose state.json belongs to another model.
    ckpt, _ = make_checkpoint(tmp_path / "run", seed=2)
    state_file = os.path.join(ckpt, "state.json")
    with open(state_file) as f:
        state = json.load(f)
    state["config"]["model"] = "cvm_net_ii"
    with open(state_file, "w") as f:
        json.dump(state, f)
    with pytest.raises(CheckpointError, match="cvm_net_ii"):
        serving.export_saved_model(ckpt, out)
    # A Keras model that is not a two-branch cvmnet_tf model.
    import keras
    inp = keras.Input((4,))
    keras.Model(inp, keras.layers.Dense(2)(inp), name="other").save(str(tmp_path / "other.keras"))
    with pytest.raises(CheckpointError, match="not a cvmnet_tf two-branch model"):
        serving.export_saved_model(str(tmp_path / "other.keras"), out)
    with pytest.raises(ValueError, match="--dataset"):
        serving.export_saved_model(ckpt, out, dataset="kitti")
    assert not os.path.exists(out)
    assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p]
