"""The issue-13 training options: presets per dataset, the learning-rate schedule, the
initialisation and polar / augmentation checks."""
import math

import numpy as np
import pytest

import keras

from cvmnet_tf.training.config import PRESET_DATASET_VALUES, PRESETS, make_config
from cvmnet_tf.training.loop import learning_rate_schedule, synthetic_data_dir


def test_paper_preset_is_the_released_pipeline():
    c = make_config("paper", synthetic=True)
    assert (c.init, c.polar_satellite, c.augmentation, c.lr_schedule, c.warmup_epochs, c.dropout_rate) == \
        ("released", False, "released", "constant", 0.0, 0.2)


def test_cpu_demo_per_dataset_and_explicit_values_win():
    c = make_config("cpu_demo", synthetic=True)
    assert (c.init, c.polar_satellite, c.augmentation, c.lr_schedule, c.learning_rate) == \
        ("he", True, "aligned", "cosine", 1e-3)
    assert c.synthetic_train_pairs == 12000 and c.dropout_rate == 0.0
    u = make_config("cpu_demo", dataset="university1652", synthetic=True)
    assert (u.polar_satellite, u.augmentation, u.synthetic_train_pairs) == (False, "released", 8000)
    v = make_config("cpu_demo", dataset="vohays", synthetic=True)
    assert (v.polar_satellite, v.augmentation) == (False, "released")
    w = make_config("cpu_demo", dataset="university1652", synthetic=True, augmentation="none", polar_satellite=True)
    assert (w.polar_satellite, w.augmentation) == (True, "none")
    # CVUSA's demo: 12 epochs on synthetic tiles up to 7 m off the camera; a real dataset keeps its tiles.
    assert (c.epochs, c.synthetic_tile_offset_m) == (12, 7.0)
    real = make_config("cpu_demo", data_dir="somewhere")
    real.validate()
    assert (real.epochs, real.synthetic_tile_offset_m) == (12, 0.0)
    a = make_config("cpu_demo", dataset="cvact", synthetic=True)
    assert (a.epochs, a.synthetic_tile_offset_m) == (6, 0.0)
    assert make_config("cpu_demo", synthetic=True, synthetic_tile_offset_m=3.0).synthetic_tile_offset_m == 3.0
    assert make_config("cpu_demo", synthetic=True, epochs=6).epochs == 6
    with pytest.raises(ValueError, match="--synthetic only"):
        make_config("cpu_demo", data_dir="somewhere", synthetic_tile_offset_m=3.0).validate()
    for (preset, _), values in PRESET_DATASET_VALUES.items():
        assert set(values) <= set(PRESETS[preset])


@pytest.mark.parametrize("overrides, pattern", [
    ({"dataset": "vohays", "augmentation": "aligned"}, "has no panoramas"),
    ({"ground_size": (32, 130)}, "multiple of 4"),
    ({"satellite_size": (64, 48)}, "square satellite"),
    ({"lr_schedule": "constant", "warmup_epochs": 0.5}, "--warmup_epochs"),
    ({"warmup_epochs": 13.0}, "--warmup_epochs=13.0"),  # more than the 12 epochs
    ({"init": "xavier"}, "--init='xavier'"),
    ({"augmentation": "rotate"}, "--augmentation='rotate'"),
])
def test_bad_recipe_options_are_refused(overrides, pattern):
    with pytest.raises(ValueError, match=pattern.replace("(", r"\(")):
        make_config("cpu_demo", synthetic=True, **overrides).validate()


def test_cosine_schedule_with_warmup():
    c = make_config("cpu_demo", synthetic=True, epochs=4, warmup_epochs=0.5, learning_rate=1e-3)
    steps = 100
    sched = learning_rate_schedule(c, steps)
    lr = np.array([float(keras.ops.convert_to_numpy(sched(t))) for t in range(0, 401, 10)])
    t = np.arange(0, 401, 10)
    warm = 50
    expect = np.where(t < warm, 1e-3 * t / warm,
                      1e-3 * 0.5 * (1 + np.cos(math.pi * np.clip(t - warm, 0, 350) / 350)))
    # float32 arithmetic on values <= 1e-3: a few eps32 relative to the peak
    np.testing.assert_allclose(lr, expect, rtol=0, atol=16 * np.finfo(np.float32).eps * 1e-3)
    assert learning_rate_schedule(make_config("paper", synthetic=True), steps) == 1e-5


def test_synthetic_folder_names_the_sizes_and_world():
    c = make_config("cpu_demo", synthetic=True)
    assert synthetic_data_dir(c).endswith("synthetic_cvusa_12000_500_seed0_64x64_32x128_w2_off7m")
    u = make_config("cpu_demo", dataset="university1652", synthetic=True)
    assert synthetic_data_dir(u).endswith("synthetic_university1652_8000_500_seed0_128x128_128x128_w2")
    a = make_config("cpu_demo", dataset="cvact", synthetic=True)
    assert synthetic_data_dir(a).endswith("_64x64_64x128_w2")       # full panoramas: twice the rows


def test_he_init_keeps_the_activation_scale():
    """Through 13 ReLU convs a He-initialised VGG keeps the scale of its input; the released
    Glorot initialisation (kernels and biases) shrinks the signal by orders of magnitude, and
    what is left is mostly the constant bias response (the same for every image)."""
    from cvmnet_tf.models.backbones import build_backbone

    x = np.random.default_rng(0).normal(scale=50, size=(4, 64, 64, 3)).astype(np.float32)
    scale, spread = {}, {}
    for init in ("released", "he"):
        keras.utils.set_random_seed(1)
        net = build_backbone("vgg16", (64, 64, 3), width=0.25, dropout_rate=0.0, freeze_early_layers=False,
                             init=init)
        y = keras.ops.convert_to_numpy(net(x))
        scale[init] = float(y.std() / x.std())                   # output vs input scale
        spread[init] = float(y.std(axis=0).mean() / x.std())     # image-dependent part
    # Measured (seeds 1-3): he scale 0.75..1.44, spread 0.08..0.10; released scale
    # 0.004..0.006, spread 0.0002..0.0004. Bounds at least 2x (mostly 10x) away.
    assert 0.25 < scale["he"] < 4.0, scale
    assert scale["released"] < 0.05, scale
    assert spread["he"] > 20 * spread["released"], spread
