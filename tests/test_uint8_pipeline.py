"""uint8 batches (output_dtype="uint8") + the device layer == the float32 pipeline, to within
uint8 rounding."""
import numpy as np
import pytest
import tensorflow as tf

from cvmnet_tf import models
from cvmnet_tf.data import ImageSizes, load_cvusa_split, make_pair_dataset
from cvmnet_tf.data import preprocessing as pp
from cvmnet_tf.data.fov import GroundCrop
from cvmnet_tf.layers import NetworkInput
from test_data_loaders import write_cvusa

SIZES = ImageSizes(satellite=(64, 64), ground=(32, 128))
# uint8 rounding moves a value by <= 0.5; each side's float32 "x - mean" (|result| < 256)
# is rounded once more, by at most half an ulp of 256 = 2**-16.
ROUNDING = 0.5 + 2 * 2.0 ** -16


@pytest.fixture(scope="module")
def cvusa(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("cvusa_u8"))
    write_cvusa(root, n_train=6, n_val=4, sat=(75, 75), grd=(40, 160))
    return root


def collect(ds):
    out = {}
    for batch in ds:
        for k, v in batch.items():
            out.setdefault(k, []).append(v.numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def device(x):
    return NetworkInput()(x).numpy()


def _compare(split, sizes, **kwargs):
    u8 = collect(make_pair_dataset(split, sizes, output_dtype="uint8", **kwargs))
    f32 = collect(make_pair_dataset(split, sizes, **kwargs))
    np.testing.assert_array_equal(u8["index"], f32["index"])
    diffs = []
    for key in ("satellite", "ground"):
        assert u8[key].dtype == np.uint8 and f32[key].dtype == np.float32
        assert u8[key].shape == f32[key].shape
        diff = np.abs(device(u8[key]) - f32[key])
        assert diff.max() <= ROUNDING, (key, diff.max())
        diffs.append(diff.max())
    return diffs


def test_training_uint8_equals_float_within_rounding(cvusa):
    split = load_cvusa_split(cvusa, "train")
    sat_diff, grd_diff = _compare(split, SIZES, training=True, batch_size=3, seed=7)
    assert sat_diff > 0.05 and grd_diff > 0.05  # resized: rounding did happen (the test can fail)


@pytest.mark.parametrize("augmentation", ["aligned", "none"])
def test_other_augmentations_and_fov_crop(cvusa, augmentation):
    split = load_cvusa_split(cvusa, "train")
    _compare(split, SIZES, training=True, batch_size=3, seed=3, augmentation=augmentation,
             ground_crop=GroundCrop(fov_deg=90.0, random_orientation=True))


def test_evaluation_uint8_equals_float_within_rounding(cvusa):
    _compare(load_cvusa_split(cvusa, "val"), SIZES, training=False, batch_size=2)


def test_rotation_after_rounding_is_exact():
    img = tf.constant(np.random.default_rng(0).integers(0, 256, (75, 75, 3), dtype=np.uint8))
    for s in range(6):
        seed = tf.constant([s, 11], tf.int64)
        want = pp.to_uint8(pp.satellite_pixels(img, (64, 64), training=True, seed=seed))
        np.testing.assert_array_equal(pp.satellite_uint8(img, (64, 64), training=True, seed=seed).numpy(),
                                      want.numpy())
    # a CVUSA panorama at the paper size goes through untouched
    pano = tf.constant(np.random.default_rng(1).integers(0, 256, (224, 1232, 3), dtype=np.uint8))
    np.testing.assert_array_equal(pp.ground_uint8(pano, (224, 1232), "cvusa").numpy(), pano.numpy())
    np.testing.assert_array_equal(pp.to_uint8(tf.constant([[-3.0, 0.5, 1.5, 254.6, 300.0]])).numpy(),
                                  [[0, 0, 2, 255, 255]])


def test_bad_output_dtype_and_the_loop_choice(cvusa):
    with pytest.raises(ValueError, match="output_dtype"):
        make_pair_dataset(load_cvusa_split(cvusa, "val"), SIZES, training=False, batch_size=2,
                          output_dtype="float16")
    model = models.build_model("cvm_net_i", satellite_shape=(32, 32), ground_shape=(16, 64), width=0.0625,
                               num_clusters=4, descriptor_dim=8)
    assert models.model_input_dtype(model) == "uint8"  # new models: the loop ships uint8 batches
