"""The command-line conventions every tool shares (cvmnet_tf.cli): console scripts, one
error line naming the flag, exit 2 for usage errors (no help text first), 1 for failures."""
import configparser
import importlib
import os
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO)


def _run(module, *args, cwd=None):
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd or REPO, env=ENV, capture_output=True,
                          text=True, timeout=300)


def _error_lines(proc):
    return [line for line in proc.stderr.splitlines() if line.startswith("error:")]


def test_console_scripts_resolve():
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(REPO, "setup.cfg"))
    scripts = {}
    for line in cfg["options.entry_points"]["console_scripts"].strip().splitlines():
        name, target = (part.strip() for part in line.split("="))
        module, attr = target.split(":")
        scripts[name] = getattr(importlib.import_module(module), attr)
        assert callable(scripts[name]), name
    from cvmnet_tf.data.registry import TRAINABLE_DATASETS
    expected = {f"cvmnet-train-{d}" for d in TRAINABLE_DATASETS} | {
        "cvmnet-evaluate", "cvmnet-export", "cvmnet-extract", "cvmnet-convert-tf1", "cvmnet-localize",
        "cvmnet-synthetic", "cvmnet-query", "cvmnet-reproduce"}
    assert set(scripts) == expected


@pytest.mark.parametrize("module, args, needle", [
    ("cvmnet_tf.evaluate", ["--database=x.npy"], "--query and --database are required"),
    ("cvmnet_tf.evaluate", ["--query=nope.npy", "--database=nope.npy"], "--query='nope.npy': file not found"),
    ("cvmnet_tf.evaluate", ["--no_such_flag=1"], "no_such_flag"),
    ("cvmnet_tf.export", ["--output=x"], "--checkpoint"),
    ("cvmnet_tf.extract", ["--checkpoint=none", "--dataset=kitti", "--data_dir=.", "--output=x"], "--dataset"),
    ("cvmnet_tf.extract", ["--checkpoint=none", "--dataset=cvusa", "--data_dir=/no/such", "--output=x"],
     "--data_dir='/no/such'"),
    ("cvmnet_tf.extract", ["--checkpoint=none", "--dataset=cvusa", "--data_dir=.", "--output=x", "--task=x"],
     "--task"),
    ("cvmnet_tf.convert_tf1", ["--tf1_checkpoint=x", "--model=cvm_net_i", "--output=x.keras",
                               "--satellite_size=512,512"], "--satellite_size='512,512': expected HxW"),
    ("cvmnet_tf.localization", ["--checkpoint=nope", "--map_dir=nope", "--stride_m=5", "--output_dir=o"],
     "--checkpoint='nope'"),
    ("cvmnet_tf.data.synthetic", ["--output_dir=o", "--workers=0"], "--workers=0"),
    ("cvmnet_tf.data.synthetic", ["--output_dir=o", "--layout=kitti"], "--layout"),
])
def test_usage_errors_one_line_exit_2(tmp_path, module, args, needle):
    proc = _run(module, *args, cwd=str(tmp_path))
    assert proc.returncode == 2, proc.stderr
    lines = _error_lines(proc)
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert "Examples" not in proc.stderr and "USAGE" not in proc.stderr and not proc.stdout
    assert os.listdir(tmp_path) == []


def test_failure_exits_1_with_one_line_and_the_old_output_spelling(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "q.npy", rng.standard_normal((5, 4)).astype(np.float32))
    np.save(tmp_path / "d.npy", rng.standard_normal((5, 3)).astype(np.float32))
    proc = _run("cvmnet_tf.evaluate", f"--query={tmp_path / 'q.npy'}", f"--database={tmp_path / 'd.npy'}",
                f"--output={tmp_path / 'm.json'}")
    assert proc.returncode == 1 and len(_error_lines(proc)) == 1 and "dimensions differ" in proc.stderr
    assert not (tmp_path / "m.json").exists()
    np.save(tmp_path / "d.npy", rng.standard_normal((5, 4)).astype(np.float32))
    proc = _run("cvmnet_tf.evaluate", f"--query={tmp_path / 'q.npy'}", f"--database={tmp_path / 'd.npy'}",
                f"--output_json={tmp_path / 'm.json'}")  # deprecated alias of --output
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "m.json").exists()


def test_synthetic_command_writes_the_layout(tmp_path):
    out = tmp_path / "u1652"
    proc = _run("cvmnet_tf.data.synthetic", f"--output_dir={out}", "--layout=university1652", "--num_train=2",
                "--num_val=1", "--satellite_size=32x32", "--ground_size=32x32")
    assert proc.returncode == 0, proc.stderr
    from cvmnet_tf.data import load_split
    split = load_split("university1652", str(out), "train")
    assert len(set(split.labels.tolist())) == 2 and len(split) == 8   # 4 drone views per building


def test_extract_labelled_split_matches_the_ground_encoder(tmp_path):
    """University-1652 test split: query/gallery descriptors and labels, as the branch encoders give them."""
    pytest.importorskip("tensorflow")
    from test_export import GRD, SAT, make_checkpoint

    from cvmnet_tf import models
    from cvmnet_tf.data import load_split
    from cvmnet_tf.data import preprocessing as pp
    from cvmnet_tf.data.synthetic import write_dataset
    from cvmnet_tf.inference import descriptors
    from cvmnet_tf.inference.encoders import read_rgb

    data = str(tmp_path / "data")
    write_dataset(data, "university1652", num_train=2, num_val=2, satellite_size=(32, 32), ground_size=(32, 32))
    ckpt, model = make_checkpoint(tmp_path / "run", dataset="university1652")
    res = descriptors.extract_descriptors(ckpt, "university1652", data, "test", batch_size=3, progress=False)
    split = load_split("university1652", data, "test")
    assert res["query"].shape == (len(split.query), 16) and res["gallery"].shape == (len(split.gallery), 16)
    np.testing.assert_array_equal(res["query_labels"], split.query.labels)
    np.testing.assert_array_equal(res["gallery_labels"], split.gallery.labels)
    images = np.stack([pp.preprocess_ground(read_rgb(p), GRD, "university1652").numpy() for p in split.query.paths])
    want = np.asarray(models.ground_encoder(model)(images, training=False))
    np.testing.assert_allclose(res["query"], want, rtol=1e-5, atol=1e-6 * np.abs(want).max())
    assert SAT == (32, 32)
    paths = descriptors.write_descriptors(str(tmp_path / "out" / "u"), res)
    assert sorted(os.path.basename(p) for p in paths.values()) == [
        "u_gallery.npy", "u_gallery_labels.npy", "u_query.npy", "u_query_labels.npy"]
    np.testing.assert_array_equal(np.load(paths["query_labels"]), split.query.labels)
