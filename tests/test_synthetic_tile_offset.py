"""--synthetic_tile_offset_m: off-centre training tiles, centred validation tiles (map localization)."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from cvmnet_tf.data import get_dataset
from cvmnet_tf.data.synthetic import write_dataset
from cvmnet_tf.data.synthetic.config import WorldConfig
from cvmnet_tf.training.config import make_config
from cvmnet_tf.training.loop import synthetic_data_dir, write_synthetic_dataset


def _split_images(root, split):
    with open(os.path.join(root, "splits", f"{split}-19zl.csv")) as f:
        rows = [line.strip().split(",") for line in f if line.strip()]
    return [(np.asarray(Image.open(os.path.join(root, s)), float), np.asarray(Image.open(os.path.join(root, g)), float))
            for s, g, _ in rows]


def test_only_training_tiles_move_off_the_camera(tmp_path):
    centred, moved = str(tmp_path / "c"), str(tmp_path / "m")
    write_synthetic_dataset(centred, "cvusa", 12, 6, seed=3, satellite_size=(64, 64), ground_size=(16, 64))
    write_synthetic_dataset(moved, "cvusa", 12, 6, seed=3, satellite_size=(64, 64), ground_size=(16, 64),
                            training_tile_offset_m=10.0)
    # validation: the very same centred pairs, byte for byte
    assert open(os.path.join(centred, "splits", "val-19zl.csv")).read() == \
        open(os.path.join(moved, "splits", "val-19zl.csv")).read()
    for (s0, g0), (s1, g1) in zip(_split_images(centred, "val"), _split_images(moved, "val")):
        assert np.array_equal(s0, s1) and np.array_equal(g0, g1)
    # training: exactly the pairs of the every-split offset (whose tile moves are checked in
    # test_synthetic_world_v2.py), and those differ from the centred validation pairs there
    everywhere = str(tmp_path / "e")
    write_dataset(everywhere, "cvusa", 12, 6, seed=3, satellite_size=(64, 64), ground_size=(16, 64),
                  config=WorldConfig(tile_offset_m=10.0))
    moved_train = _split_images(moved, "train")
    assert len(moved_train) == 12
    for (s0, g0), (s1, g1) in zip(moved_train, _split_images(everywhere, "train")):
        assert np.array_equal(s0, s1) and np.array_equal(g0, g1)
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(_split_images(moved, "val"),
                                                              _split_images(everywhere, "val")))

    meta = json.load(open(os.path.join(moved, "synthetic_meta.json")))
    assert meta["config"]["tile_offset_m"] == 10.0 and meta["config"]["tile_offset_splits"] == ["train"]
    meta0 = json.load(open(os.path.join(centred, "synthetic_meta.json")))
    assert meta0["config"]["tile_offset_m"] == 0.0


def test_world_config_offset_splits():
    cfg = WorldConfig(tile_offset_m=7.0, tile_offset_splits=("train",))
    assert cfg.for_split("train").tile_offset_m == 7.0
    assert cfg.for_split("val").tile_offset_m == 0.0 and cfg.for_split("test").tile_offset_m == 0.0
    assert WorldConfig(tile_offset_m=7.0).for_split("val").tile_offset_m == 7.0   # default: every split
    with pytest.raises(ValueError, match="tile_offset_splits"):
        WorldConfig(tile_offset_splits=("training",))


def test_training_option_checks_and_folder_name():
    cfg = make_config("cpu_demo", synthetic=True, synthetic_tile_offset_m=7.0)
    cfg.validate()
    assert synthetic_data_dir(cfg).endswith("_w2_off7m")
    assert synthetic_data_dir(make_config("cpu_demo", synthetic=True, synthetic_tile_offset_m=0.0)).endswith("_w2")
    assert synthetic_data_dir(make_config("cpu_demo", synthetic=True)).endswith("_w2_off7m")  # the CVUSA demo
    for kwargs, words in (({"synthetic_tile_offset_m": -1.0, "synthetic": True}, "0 .. 50"),
                          ({"synthetic_tile_offset_m": 5.0, "data_dir": "x"}, "--synthetic only"),
                          ({"synthetic_tile_offset_m": 5.0, "synthetic": True, "dataset": "vigor"}, "no tiles")):
        with pytest.raises(ValueError, match=words):
            make_config("cpu_demo", **kwargs).validate()
    assert get_dataset("cvusa").synthetic.tile_offset and not get_dataset("vohays").synthetic.tile_offset
