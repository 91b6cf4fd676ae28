"""VIGOR training end to end on the synthetic VIGOR layout: the released outputs, overlap-free
batches, and VIGOR's validation metrics checked against an independent computation."""
import json
import math
import os

import numpy as np
import pytest

from cvmnet_tf.training import make_config, train
from cvmnet_tf.training import checkpoints as ckpt
from cvmnet_tf.training.loop import write_synthetic_dataset

EARTH_R = 6371004.0  # VIGOR's gps2distance sphere


@pytest.fixture(scope="module")
def synthetic_vigor(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("synthetic_vigor"))
    write_synthetic_dataset(root, "vigor", num_train=64, num_val=32, seed=0)
    return root


def _config(data_dir, out, **kw):
    values = dict(dataset="vigor", data_dir=data_dir, output_dir=out, verbose=0, tensorboard=False, epochs=2,
                  max_steps_per_epoch=3, batch_size=8)
    values.update(kw)
    return make_config("cpu_demo", **values)


def test_training_writes_the_released_outputs_and_vigor_metrics(synthetic_vigor, tmp_path):
    out = str(tmp_path / "run")
    const = dict(lr_schedule="constant", warmup_epochs=0.0)   # so that --resume may change --epochs
    result = train(_config(synthetic_vigor, out, **const))
    assert [h["epoch"] for h in result.history] == [1, 2]
    assert ckpt.list_checkpoints(out, "cvm_net_i") == [0, 1, 2]
    metrics = result.history[-1]["metrics"]
    # same-area: 32 test panoramas against the pool of all four cities' tiles
    assert metrics["num_query"] == 32 and metrics["num_database"] == 100 and metrics["top_percent_k"] == 2
    for key in ("recall@1", "recall@5", "recall@10", "recall@1%", "hit_rate", "meter/mean_error_m",
                "meter/accuracy@25m", "chance/recall@1%", "chance/hit_rate", "chance/mean_error_m"):
        assert key in metrics, key
    assert metrics["chance/recall@1%"] == 2 / 100
    with open(ckpt.result_paths(out, "cvm_net_i")["accuracy"]) as f:
        lines = f.read().splitlines()
    assert [line.split()[0] for line in lines] == ["1", "2"]
    assert float(lines[-1].split(" : ")[1]) == metrics["recall@1%"]
    with open(ckpt.result_paths(out, "cvm_net_i")["metrics"]) as f:
        assert [json.loads(line)["epoch"] for line in f] == [1, 2]
    with open(ckpt.result_paths(out, "cvm_net_i")["flags"]) as f:
        assert json.load(f)["vigor_area"] == "same"
    # --resume continues with epoch 3 from the same files
    result = train(_config(synthetic_vigor, out, epochs=3, resume=True, **const))
    assert [h["epoch"] for h in result.history] == [1, 2, 3]


def test_training_batches_are_overlap_free(synthetic_vigor):
    from cvmnet_tf import data as cv_data
    from cvmnet_tf.data.vigor import load_vigor_split

    pairs = load_vigor_split(synthetic_vigor, "train", area="same").as_pair_split()
    ds = cv_data.make_pair_dataset(pairs, cv_data.ImageSizes((32, 32), (16, 32)), training=True, batch_size=8,
                                   seed=5)
    batches = [np.asarray(b["index"]) for b in ds]
    assert len(batches) >= 5 and all(len(b) == 8 for b in batches)
    seen = np.concatenate(batches)
    assert len(np.unique(seen)) == len(seen)
    for b in batches:   # VIGOR's check_overlap: no satellite (positive or semi) shared inside a batch
        rows = pairs.covers[b].ravel()
        rows = rows[rows >= 0]
        assert len(np.unique(rows)) == len(rows)
    # without the rule, batches of 8 drawn at random from this split would overlap: the test can fail
    rng = np.random.default_rng(0)
    random_overlaps = sum(len(np.unique(r := pairs.covers[rng.choice(len(pairs), 8, replace=False)].ravel())) < len(r)
                          for _ in range(20))
    assert random_overlaps >= 10
    # a batch larger than any overlap-free set of this split: one clear error, not an empty epoch
    with pytest.raises(ValueError, match="no overlap-free batch of 64 can be formed from its 64 pairs"):
        cv_data.make_pair_dataset(pairs, cv_data.ImageSizes((32, 32), (16, 32)), training=True, batch_size=64, seed=5)


def _vigor_reference(grd, sat, pos, semi, q_latlon, s_latlon):
    """Independent brute force of VIGOR's validate_top / evaluate_from_npy rules on the
    float32 similarities (the same products the blocked pass computes, one block here)."""
    s = grd.astype(np.float32) @ sat.astype(np.float32).T
    ranks, hits, best, err = [], [], [], []
    for i in range(len(grd)):
        t = s[i, pos[i]]
        closer = np.flatnonzero(s[i] > t)
        ranks.append(len(closer))
        hits.append(all(c in set(semi[i][semi[i] >= 0]) for c in closer))
        b = int(np.argmax(s[i]))
        best.append(b)
        la, lo = np.radians(q_latlon[i]), np.radians(s_latlon[b])
        c = math.sin(la[0]) * math.sin(lo[0]) + math.cos(la[0]) * math.cos(lo[0]) * math.cos(la[1] - lo[1])
        err.append(EARTH_R * math.acos(min(1.0, c)))
    return np.array(ranks), np.array(hits), np.array(best), np.array(err), s


def test_validation_metrics_match_an_independent_computation(synthetic_vigor):
    import keras
    import tensorflow as tf
    from PIL import Image

    from cvmnet_tf import data as cv_data
    from cvmnet_tf import models
    from cvmnet_tf.data.vigor import load_vigor_split
    from cvmnet_tf.inference.descriptors import vigor_descriptors
    from cvmnet_tf.training.validation import evaluate_model

    config = _config(synthetic_vigor, "unused", vigor_area="cross")
    keras.utils.set_random_seed(3)
    model = models.build_model_from_config(config)
    model.get_layer("dim_reduction").bias.assign(np.zeros(64, np.float32))  # spread-out descriptors
    split = load_vigor_split(synthetic_vigor, "test", area="cross")
    sizes = cv_data.ImageSizes(config.satellite_size, config.ground_size)
    got = evaluate_model(model, split, sizes, config)
    assert got["num_database"] == split.num_satellites == 50 and got["num_query"] == len(split)

    # descriptors: the pipeline's against images decoded by PIL and resized by block means here
    out = vigor_descriptors(model, split, sizes, 16)
    assert out["skipped"] == [] and len(out["split"]) == len(split)

    def by_hand(path, size, branch):
        img = np.asarray(Image.open(path).convert("RGB"), np.float64)
        fh, fw = img.shape[0] // size[0], img.shape[1] // size[1]
        img = img.reshape(size[0], fh, size[1], fw, 3).mean(axis=(1, 3))          # area resize, integer factor
        x = (img[..., ::-1] - np.array([103.939, 116.779, 123.6]))[None].astype(np.float32)
        return np.asarray(models.branch_encoder(model, branch)(tf.constant(x), training=False))[0]

    for i in (0, 7):
        np.testing.assert_allclose(out["satellite"][i], by_hand(split.satellite_paths[i], sizes.satellite, "satellite"),
                                   atol=1e3 * np.finfo(np.float32).eps)
        np.testing.assert_allclose(out["ground"][i], by_hand(split.panorama_paths[i], sizes.ground, "ground"),
                                   atol=1e3 * np.finfo(np.float32).eps)

    ranks, hits, best, err, s = _vigor_reference(out["ground"], out["satellite"], split.positive_index,
                                                 split.semi_positive_index, split.panorama_latlon,
                                                 split.satellite_latlon)
    assert len(np.unique(ranks)) > 5                                   # a ranking with spread, not a tie
    for k, cut in (("recall@1", 1), ("recall@5", 5), ("recall@10", 10), ("recall@1%", int(0.01 * 50) + 1)):
        assert got[k] == np.mean(ranks < cut), k
    assert got["hit_rate"] == np.mean(hits)
    assert np.mean(hits) >= np.mean(ranks < 1)                         # a hit includes every top-1 positive
    # law of cosines in float64: error floor R * sqrt(2 eps64) = 0.13 m per query
    assert got["meter/mean_error_m"] == pytest.approx(err.mean(), rel=1e-9, abs=0.2)
    assert got["median_rank_fraction"] == np.median(ranks) / 50
