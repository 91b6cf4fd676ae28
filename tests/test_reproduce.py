"""``cvmnet-reproduce`` on a released-layout TF1 checkpoint the test writes and a CVUSA-layout
fixture, and ``--weights`` with the released bundle's init model (VGG16 of both branches)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from tf1_fixtures import released_tf1_variables, write_tf1_checkpoint  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
K, DIM = 4, 16
SIZE = "64x64,32x128"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """The released archive's shape: CVM-Net-I/<epoch>/model.ckpt and init/CVM-Net-I/model.ckpt."""
    from cvmnet_tf.training.loop import write_synthetic_dataset

    root = tmp_path_factory.mktemp("released")
    values = released_tf1_variables("cvm_net_i", np.random.default_rng(11), K, DIM)
    trained = root / "Model" / "CVM-Net-I" / "9"
    trained.mkdir(parents=True)
    write_tf1_checkpoint(str(trained / "model.ckpt"), values)
    init = root / "Model" / "init" / "CVM-Net-I"
    init.mkdir(parents=True)
    for f in os.listdir(trained):            # same bytes, a second (init) copy the command must skip
        os.link(trained / f, init / f)
    cvusa = str(root / "CVUSA")
    write_synthetic_dataset(cvusa, "cvusa", num_train=8, num_val=12, seed=2)
    return {"root": root, "values": values, "trained": str(trained / "model.ckpt"),
            "init": str(init / "model.ckpt"), "cvusa": cvusa}


def test_one_command_reproduces_against_an_independent_evaluation(bundle, tmp_path):
    from cvmnet_tf import data as cv_data
    from cvmnet_tf.data import preprocessing as pp
    from cvmnet_tf.inference import tf1

    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "cvmnet_tf.reproduce", f"--released_model={bundle['root']}",
                           f"--data_dir={bundle['cvusa']}", f"--output_dir={out}", f"--image_size={SIZE}"],
                          cwd=REPO, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert f"checkpoint {bundle['trained']} (cvm_net_i)" in proc.stdout          # init/ skipped
    assert "| 91.40 |" in proc.stdout and "CVM-Net Table 1" in proc.stdout
    metrics = json.loads((out / "cvm_net_i_metrics.json").read_text())

    # independent: convert here, run both branches on the package's preprocessing, rank by brute force
    model = tf1.convert(bundle["trained"], "cvm_net_i", satellite_size=(64, 64), ground_size=(32, 128))
    split = cv_data.load_split("cvusa", bundle["cvusa"], "val")
    read = [pp.decode_image_checked(tf.io.read_file(p))[0] for p in split.satellite_paths]
    sat = model.get_layer("VGG_sat")   # the converted model holds the TF1 weights
    np.testing.assert_array_equal(sat.get_layer("conv3_1").kernel.numpy(), bundle["values"]["VGG_sat/conv3_1/weights"])
    s_in = tf.stack([pp.preprocess_satellite(im, (64, 64)) for im in read])
    g_in = tf.stack([pp.preprocess_ground(pp.decode_image_checked(tf.io.read_file(p))[0], (32, 128), "cvusa")
                     for p in split.ground_paths])
    desc = model({"satellite": s_in, "ground": g_in}, training=False)
    s = np.asarray(desc["ground"], np.float32) @ np.asarray(desc["satellite"], np.float32).T
    ranks = np.array([np.count_nonzero(s[i] > s[i, i]) for i in range(len(s))])
    assert len(np.unique(ranks)) > 2
    n = len(split)
    assert metrics["recall@1"] == np.mean(ranks < 1)
    assert metrics["recall@1%"] == np.mean(ranks < int(0.01 * n) + 1)
    assert metrics["recall@5"] == np.mean(ranks < 5)
    assert f"{100 * metrics['recall@1%']:.2f} % (a random ranking: {100 * (int(0.01 * n) + 1) / n:.2f} %)" in proc.stdout
    # a second run into the same folder refuses to overwrite (the library call the command makes)
    from cvmnet_tf.inference.reproduce import reproduce_released
    before = (out / "cvm_net_i_metrics.json").read_bytes()
    with pytest.raises(ValueError, match="pass --overwrite"):
        reproduce_released(bundle["trained"], bundle["cvusa"], str(out))
    assert (out / "cvm_net_i_metrics.json").read_bytes() == before


def test_finding_the_checkpoint(bundle, tmp_path):
    from cvmnet_tf.inference.reproduce import find_released_checkpoint

    assert find_released_checkpoint(str(bundle["root"])) == (bundle["trained"], "cvm_net_i")
    assert find_released_checkpoint(bundle["init"] + ".index")[1] == "cvm_net_i"
    with pytest.raises(ValueError, match="a cvm_net_ii checkpoint is not among"):
        find_released_checkpoint(str(bundle["root"]), "cvm_net_ii")
    with pytest.raises(ValueError, match="no TF1 checkpoint"):
        find_released_checkpoint(str(tmp_path))


def test_weights_from_the_released_init_model(bundle, tmp_path):
    from cvmnet_tf.inference.tf1 import ConversionError, load_released_backbones
    from cvmnet_tf.training import checkpoints as ckpt
    from cvmnet_tf.training import make_config
    from cvmnet_tf.training.loop import setup

    out = str(tmp_path / "run")
    config = make_config("paper", data_dir=bundle["cvusa"], output_dir=out, image_size=SIZE, num_clusters=K,
                         descriptor_dim=DIM, weights=bundle["init"], epochs=1, max_steps_per_epoch=1, batch_size=2,
                         max_eval_pairs=4, verbose=0, tensorboard=False)
    setup(config)   # builds the model with --weights and writes its initial checkpoint (epoch 0)
    import keras
    initial = keras.saving.load_model(os.path.join(ckpt.checkpoint_path(out, "cvm_net_i", 0), "model.keras"))
    v = bundle["values"]
    for branch in ("VGG_grd", "VGG_sat"):
        for conv in ("conv1_1", "conv3_3", "conv5_3"):
            layer = initial.get_layer(branch).get_layer(conv)
            np.testing.assert_array_equal(layer.kernel.numpy(), v[f"{branch}/{conv}/weights"])
            np.testing.assert_array_equal(layer.bias.numpy(), v[f"{branch}/{conv}/biases"])
    # NetVLAD and the FC keep this package's initialisation (random in the released init too)
    assert not np.array_equal(initial.get_layer("netvlad_grd").cluster_weights.numpy(),
                              v["netvlad_grd/cluster_weights"])
    # a checkpoint without the VGG16 part is refused naming what is missing, before any assignment
    partial = {k: a for k, a in v.items() if not k.startswith("VGG_sat/conv5")}
    write_tf1_checkpoint(str(tmp_path / "partial.ckpt"), partial, with_optimizer=False)
    with pytest.raises(ConversionError, match="6 VGG16 variable.*VGG_sat/conv5_1/weights"):
        load_released_backbones(initial, str(tmp_path / "partial.ckpt"))
