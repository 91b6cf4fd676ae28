"""Limited field of view / unknown orientation through training, evaluation, extraction and
the SavedModel (DSM's protocol: random headings in training, fixed-seed headings in tests)."""
import json
import os

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from cvmnet_tf import data as cv_data  # noqa: E402
from cvmnet_tf.data import fov  # noqa: E402
from cvmnet_tf.data import preprocessing as pp  # noqa: E402
from cvmnet_tf.training import make_config, train  # noqa: E402
from cvmnet_tf.training.loop import write_synthetic_dataset  # noqa: E402

EPS32 = np.finfo(np.float32).eps
SIZES = cv_data.ImageSizes((64, 64), (32, 128))     # cpu_demo's "tiny": panoramas resized to 32 x 128


@pytest.fixture(scope="module")
def cvusa(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("fov_cvusa"))
    write_synthetic_dataset(root, "cvusa", num_train=48, num_val=16, seed=1)
    return root


@pytest.fixture(scope="module")
def fov_run(cvusa, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("fov_run"))
    config = make_config("cpu_demo", data_dir=cvusa, output_dir=out, verbose=0, tensorboard=False, epochs=1,
                         max_steps_per_epoch=2, batch_size=8, fov=90.0, random_orientation=True)
    train(config)
    return out, config


def _resized_panoramas(split, rows):
    """The full panoramas at SIZES.ground, as the pipeline computes them before the crop."""
    return [pp.preprocess_ground(pp.decode_image_checked(tf.io.read_file(split.ground_paths[i]))[0], SIZES.ground,
                                 "cvusa").numpy() for i in rows]


def test_model_and_checkpoint_record_the_crop(fov_run):
    from cvmnet_tf.inference import load_model

    out, config = fov_run
    assert config.network_ground_size == (32, 32)        # int(90 / 360 * 128)
    model, info = load_model(os.path.join(out, "Model", "cvm_net_i", "1"))
    assert info["ground_size"] == [32, 32] and info["panorama_size"] == [32, 128]
    assert info["fov"] == 90.0 and info["random_orientation"] and info["fov_test_seed"] == 2019
    with open(os.path.join(out, "Model", "cvm_net_i", "1", "state.json")) as f:
        assert json.load(f)["config"]["fov"] == 90.0


def test_evaluation_headings_are_fixed_and_dsm_seeded(cvusa):
    split = cv_data.load_split("cvusa", cvusa, "val")
    crop = fov.GroundCrop(90.0, True)
    got = [np.concatenate([b["ground"].numpy() for b in cv_data.make_pair_dataset(
        split, SIZES, training=False, batch_size=5, ground_crop=crop)]) for _ in range(2)]
    np.testing.assert_array_equal(got[0], got[1])                     # the same crops in every run
    starts = (128 - (np.random.RandomState(2019).rand(len(split)) * 128).astype(int)) % 128   # DSM's draw
    panos = _resized_panoramas(split, range(len(split)))
    for i in range(len(split)):
        np.testing.assert_array_equal(got[0][i], panos[i][:, (starts[i] + np.arange(32)) % 128])
    assert len(set(starts.tolist())) > 8                                # headings do vary per image
    known = np.concatenate([b["ground"].numpy() for b in cv_data.make_pair_dataset(
        split, SIZES, training=False, batch_size=16, ground_crop=fov.GroundCrop(90.0, False))])
    np.testing.assert_array_equal(known[3], panos[3][:, :32])          # known orientation: from column 0


def test_training_headings_are_random_per_epoch_and_seeded(cvusa):
    split = cv_data.load_split("cvusa", cvusa, "train").subset(range(16))
    crop = fov.GroundCrop(180.0, True)
    panos = _resized_panoramas(split, range(16))

    def epoch_starts(ds):
        out = {}
        for b in ds:
            for g, i in zip(b["ground"].numpy(), b["index"].numpy()):
                p = panos[i]
                hits = [s for s in range(128) if np.array_equal(g, p[:, (s + np.arange(64)) % 128])]
                assert len(hits) >= 1                      # a wrap-around window of the resized panorama
                out[int(i)] = hits[0]
        return out

    ds = cv_data.make_pair_dataset(split, SIZES, training=True, batch_size=8, seed=7, ground_crop=crop)
    first, second = epoch_starts(ds), epoch_starts(ds)
    again = epoch_starts(cv_data.make_pair_dataset(split, SIZES, training=True, batch_size=8, seed=7,
                                                   ground_crop=crop))
    assert first == again                               # a function of (seed, epoch, pair)
    assert sum(first[i] != second[i] for i in first) >= len(first) // 2
    assert len(set(first.values())) >= 8


def test_extract_and_saved_model_take_the_crop(fov_run, cvusa, tmp_path):
    from cvmnet_tf import models
    from cvmnet_tf.inference import load_model
    from cvmnet_tf.inference.descriptors import extract_descriptors
    from cvmnet_tf.inference.serving import export_saved_model

    out, _ = fov_run
    ckpt = os.path.join(out, "Model", "cvm_net_i", "1")
    model, info = load_model(ckpt)
    split = cv_data.load_split("cvusa", cvusa, "val")
    res = extract_descriptors(ckpt, "cvusa", cvusa, "val", batch_size=8, progress=False)
    starts = fov.GroundCrop(90.0, True).evaluation_starts(len(split), 128)
    crops = np.stack([p[:, (s + np.arange(32)) % 128] for p, s in zip(_resized_panoramas(split, range(16)), starts)])
    ref = np.asarray(models.ground_encoder(model)(tf.constant(crops), training=False))
    np.testing.assert_allclose(res["ground"], ref, rtol=0, atol=1e3 * EPS32)
    with pytest.raises(ValueError, match="trained with a field of view of 90"):
        extract_descriptors(ckpt, "cvusa", cvusa, "val", fov=180.0, progress=False)

    # the SavedModel of a FoV model takes the limited-FoV photo: the raw panorama's crop at the same heading
    export = str(tmp_path / "export")
    info = export_saved_model(ckpt, export)
    assert info["fov"] == 90.0 and "limited-FoV photo" in info["ground_input"]
    via_saved = extract_descriptors(export, "cvusa", cvusa, "val", batch_size=8, progress=False)
    # raw panoramas are 64 x 256 = 2 x the resized 32 x 128: the raw crop's area resize is the resized crop
    np.testing.assert_allclose(via_saved["ground"], res["ground"], rtol=0, atol=1e3 * EPS32)
    np.testing.assert_allclose(via_saved["satellite"], res["satellite"], rtol=0, atol=1e3 * EPS32)
