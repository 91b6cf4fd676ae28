"""Descriptor extraction: files, order, .mat, distractors, SavedModel path, bad input."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from cvmnet_tf.inference import descriptors as extract  # noqa: E402
from cvmnet_tf.inference import serving  # noqa: E402
from cvmnet_tf.inference.checkpoints import CheckpointError  # noqa: E402
from cvmnet_tf.data import load_split  # noqa: E402
from cvmnet_tf.data import preprocessing as pp  # noqa: E402
from cvmnet_tf.data.synthetic import write_dataset  # noqa: E402
from test_export import GRD, SAT, make_checkpoint  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("extract")
    data = str(root / "cvact")
    write_dataset(data, layout="cvact", num_train=1, num_val=5, seed=3, satellite_size=(48, 48),
                  ground_size=(32, 128))
    split = load_split("cvact", data, "val")
    distractors = root / "distractors"
    distractors.mkdir()
    shutil.copy(split.satellite_paths[0], distractors / "b.jpg")
    shutil.copy(split.satellite_paths[1], distractors / "a.jpg")
    ckpt, model = make_checkpoint(root / "run", dataset="cvact", seed=4)
    return root, data, split, str(distractors), ckpt, model


def _reference(model, split):
    def read(path):
        return tf.io.decode_jpeg(tf.io.read_file(path), channels=3, dct_method="INTEGER_ACCURATE")
    sat = np.stack([pp.preprocess_satellite(read(p), SAT, training=False).numpy() for p in split.satellite_paths])
    grd = []
    for p in split.ground_paths:
        im = read(p).numpy()
        h = im.shape[0]
        grd.append(pp.to_network_input(tf.image.resize(im[h // 4: h // 4 + h // 2], GRD, method="area")).numpy())
    out = model({"satellite": sat, "ground": np.stack(grd)}, training=False)
    return np.asarray(out["satellite"]), np.asarray(out["ground"])


def test_cli_writes_descriptor_files_matching_reference(setup):
    root, data, split, distractors, ckpt, model = setup
    prefix = str(root / "out" / "val")
    proc = subprocess.run([sys.executable, "-m", "cvmnet_tf.extract", f"--checkpoint={ckpt}", "--dataset=cvact",
                           f"--data_dir={data}", "--split=val", f"--output={prefix}", "--batch_size=2",
                           f"--distractor_dir={distractors}"],
                          cwd=REPO, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    sat = np.load(prefix + "_satellite.npy")
    grd = np.load(prefix + "_ground.npy")
    index = np.load(prefix + "_index.npy")
    ref_sat, ref_grd = _reference(model, split)
    assert sat.dtype == np.float32 and sat.shape == (5, 16)
    np.testing.assert_array_equal(index, np.arange(5))
    np.testing.assert_allclose(sat, ref_sat, atol=1e-5)
    np.testing.assert_allclose(grd, ref_grd, atol=1e-5)
    import scipy.io
    mat = scipy.io.loadmat(prefix + ".mat")
    np.testing.assert_array_equal(mat["sat_global_descriptor"], sat)
    np.testing.assert_array_equal(mat["grd_global_descriptor"], grd)
    np.testing.assert_allclose(mat["utm"], split.utm)
    # Distractors in sorted file-name order: a.jpg = pair 1's tile, b.jpg = pair 0's.
    dis = np.load(prefix + "_distractors.npy")
    np.testing.assert_allclose(dis, ref_sat[[1, 0]], atol=1e-5)
    assert not [p for p in os.listdir(root / "out") if ".tmp-" in p]


def test_saved_model_path_gives_the_same_descriptors(setup):
    root, data, split, distractors, ckpt, model = setup
    saved = str(root / "saved")
    serving.export_saved_model(ckpt, saved)
    res = extract.extract_descriptors(saved, "cvact", data, "val", batch_size=3, distractor_dir=distractors,
                                      progress=False)
    ref_sat, ref_grd = _reference(model, split)
    np.testing.assert_allclose(res["satellite"], ref_sat, atol=1e-5)
    np.testing.assert_allclose(res["ground"], ref_grd, atol=1e-5)
    np.testing.assert_allclose(res["distractors"], ref_sat[[1, 0]], atol=1e-5)
    np.testing.assert_allclose(res["utm"], split.utm)
    with pytest.raises(ValueError, match="exported with 'cvact'"):
        extract.extract_descriptors(saved, "cvusa", data, "val", progress=False)


def test_bad_input_writes_nothing(setup, tmp_path):
    root, data, split, distractors, ckpt, model = setup
    prefix = str(tmp_path / "x")
    good = {"satellite": np.ones((3, 4), np.float32), "ground": np.ones((3, 4), np.float32),
            "index": np.arange(3), "utm": None, "distractors": None, "distractor_paths": []}
    bad_nan = dict(good, ground=np.array([[1, 0, 0, 0], [np.nan, 0, 0, 0], [0, 1, 0, 0]], np.float32))
    with pytest.raises(ValueError, match="ground descriptors: descriptors contain NaN.*row 1"):
        extract.write_descriptors(prefix, bad_nan)
    with pytest.raises(ValueError, match="differ in shape"):
        extract.write_descriptors(prefix, dict(good, ground=np.ones((2, 4), np.float32)))
    with pytest.raises(ValueError, match="dim 5"):
        extract.write_descriptors(prefix, dict(good, distractors=np.ones((2, 5), np.float32)))
    with pytest.raises(ValueError, match="utm"):
        extract.write_descriptors(prefix, dict(good, utm=np.ones((3, 3))))
    assert os.listdir(tmp_path) == []
    with pytest.raises(CheckpointError, match="model.keras is missing"):
        extract.extract_descriptors(str(tmp_path), "cvact", data, "val", progress=False)
    with pytest.raises(ValueError, match="--dataset"):
        extract.extract_descriptors(ckpt, "kitti", data, "val", progress=False)
    paths = extract.write_descriptors(prefix, good)
    assert sorted(os.listdir(tmp_path)) == sorted(os.path.basename(p) for p in paths.values())
