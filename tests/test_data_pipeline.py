"""tf.data pipelines: order, values, skipping and reporting of bad images, distractors."""
import logging
import os

import numpy as np
import pytest
import tensorflow as tf

from cvmnet_tf.data import (ImageSizes, PairSplit, SkipReport, load_cvact_split,
                            load_cvusa_split, make_image_dataset, make_pair_dataset,
                            make_satellite_database)
from test_data_loaders import save_jpeg, smooth_image, write_cvact, write_cvusa
from test_data_preprocessing import area_resize_np, net_input_np

SIZES = ImageSizes(satellite=(64, 64), ground=(32, 128))


def decoded(path):
    """Reference decode of a fixture file (same libjpeg settings as the pipeline)."""
    return tf.io.decode_jpeg(tf.io.read_file(path), channels=3,
                             dct_method="INTEGER_ACCURATE").numpy()


def collect(ds):
    out = {}
    for batch in ds:
        for k, v in batch.items():
            out.setdefault(k, []).append(v.numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


@pytest.fixture(scope="module")
def cvusa(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("cvusa"))
    write_cvusa(root, n_train=7, n_val=5, sat=(75, 75), grd=(40, 160))
    return root


def test_eval_pairs_values_order_and_determinism(cvusa):
    split = load_cvusa_split(cvusa, "val")
    ds = make_pair_dataset(split, SIZES, training=False, batch_size=2)
    a = collect(ds)
    assert a["index"].dtype == np.int64 and list(a["index"]) == [0, 1, 2, 3, 4]
    assert a["satellite"].shape == (5, 64, 64, 3) and a["satellite"].dtype == np.float32
    assert a["ground"].shape == (5, 32, 128, 3) and a["ground"].dtype == np.float32
    for i in range(5):
        sat_ref = net_input_np(area_resize_np(decoded(split.satellite_paths[i]), 64, 64))
        grd_ref = net_input_np(area_resize_np(decoded(split.ground_paths[i]), 32, 128))
        np.testing.assert_allclose(a["satellite"][i], sat_ref, atol=2e-3)
        np.testing.assert_allclose(a["ground"][i], grd_ref, atol=2e-3)
    b = collect(ds)  # second pass over the same dataset: identical
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_training_batches_are_full_seeded_and_augment_only_satellite(cvusa):
    split = load_cvusa_split(cvusa, "train")
    ds, report = make_pair_dataset(split, SIZES, training=True, batch_size=3, seed=5,
                                   return_report=True)
    e1 = [{k: v.numpy() for k, v in b.items()} for b in report.track(ds)]
    assert [b["index"].shape for b in e1] == [(3,), (3,)]  # 7 pairs -> 2 full batches
    skips = report.end_epoch()
    assert skips.num_skipped == 0 and skips.num_unused == 1 and skips.num_seen == 6
    idx = np.concatenate([b["index"] for b in e1])
    assert len(set(idx)) == 6 and set(idx) <= set(range(7))
    # the ground branch is not augmented: equal to the evaluation preprocessing
    for b in e1:
        for j, i in enumerate(b["index"]):
            ref = net_input_np(area_resize_np(decoded(split.ground_paths[i]), 32, 128))
            np.testing.assert_allclose(b["ground"][j], ref, atol=2e-3)
    # same seed -> same epoch sequence (order and augmentation)
    ds2 = make_pair_dataset(split, SIZES, training=True, batch_size=3, seed=5)
    e1b = [{k: v.numpy() for k, v in b.items()} for b in ds2]
    for x, y in zip(e1, e1b):
        np.testing.assert_array_equal(x["index"], y["index"])
        np.testing.assert_array_equal(x["satellite"], y["satellite"])
    # every training satellite is a centred crop (side 75 or 51..74 at a 75 px tile, the
    # 750-rule scaled) + area resize + quarter turn of its own source tile
    for b in e1:
        for j, i in enumerate(b["index"]):
            src = decoded(split.satellite_paths[i])
            resized = [net_input_np(area_resize_np(
                src[(75 - c) // 2:(75 - c) // 2 + c, (75 - c) // 2:(75 - c) // 2 + c], 64, 64))
                for c in [75] + list(range(51, 75))]
            best = min(np.abs(b["satellite"][j] - np.rot90(x, r)).max()
                       for x in resized for r in range(4))
            assert best < 2e-3
    # a second epoch reshuffles / redraws
    e2 = [{k: v.numpy() for k, v in b.items()} for b in ds]
    assert any(not np.array_equal(x["satellite"], y["satellite"]) for x, y in zip(e1, e2))


@pytest.fixture()
def bad_cvusa(tmp_path):
    root = str(tmp_path)
    write_cvusa(root, n_train=2, n_val=6, sat=(75, 75), grd=(40, 160))
    sat = lambda pid: os.path.join(root, "bingmap/19", f"{pid}.jpg")  # noqa: E731
    grd = lambda pid: os.path.join(root, "streetview/panos", f"{pid}.jpg")  # noqa: E731
    # 1: truncated satellite JPEG (no EOI)
    data = open(sat("0001001"), "rb").read()
    open(sat("0001001"), "wb").write(data[: len(data) // 2])
    # 3: not a JPEG at all
    open(grd("0001003"), "wb").write(b"\x00garbage" * 50)
    # 4: JPEG markers intact but the content is corrupt (decoder raises -> backstop)
    open(sat("0001004"), "wb").write(b"\xff\xd8" + os.urandom(300) + b"\xff\xd9")
    return root, {1: sat("0001001"), 3: grd("0001003"), 4: sat("0001004")}


def test_corrupt_and_truncated_jpegs_are_skipped_and_reported(bad_cvusa, caplog):
    root, bad = bad_cvusa
    split = load_cvusa_split(root, "val")
    assert len(split) == 6
    ds, report = make_pair_dataset(split, SIZES, training=False, batch_size=4,
                                   return_report=True)
    out = collect(report.track(ds))
    assert list(out["index"]) == [0, 2, 5]
    # never a black image: every delivered satellite is its own file's content
    for j, i in enumerate(out["index"]):
        ref = net_input_np(area_resize_np(decoded(split.satellite_paths[i]), 64, 64))
        np.testing.assert_allclose(out["satellite"][j], ref, atol=2e-3)
    with caplog.at_level(logging.WARNING, logger="cvmnet_tf.data"):
        skips = report.end_epoch()
    assert skips.num_skipped == 3 and skips.num_unused == 0
    assert {s.index: s.path for s in skips.skipped} == bad
    reasons = {s.index: s.reason for s in skips.skipped}
    assert "truncated" in reasons[1] and "not a JPEG" in reasons[3] and "corrupt" in reasons[4]
    for path in bad.values():
        assert path in caplog.text
    assert report.num_skipped == 3 and [s.index for s in report.skipped] == [1, 3, 4]
    # a second epoch reports the same items again, without re-checking
    collect(report.track(ds))
    assert report.end_epoch(log_result=False).num_skipped == 3


def test_file_removed_after_loading_is_reported(cvusa, tmp_path):
    root = str(tmp_path)
    write_cvusa(root, n_train=3, n_val=1, sat=(75, 75), grd=(40, 160))
    split = load_cvusa_split(root, "train")
    os.remove(split.ground_paths[1])
    ds, report = make_pair_dataset(split, SIZES, training=False, batch_size=8,
                                   return_report=True)
    assert list(collect(report.track(ds))["index"]) == [0, 2]
    skips = report.end_epoch()
    assert [(s.index, s.path, s.reason) for s in skips.skipped] == \
        [(1, split.ground_paths[1], "image file missing")]


def test_cvusa_paper_size_needs_224x1232_panorama(tmp_path):
    root = str(tmp_path)
    write_cvusa(root, n_train=1, n_val=2, sat=(40, 40), grd=(224, 1232))
    split = load_cvusa_split(root, "val")
    save_jpeg(split.ground_paths[0], smooth_image(220, 1232, 3))
    sizes = ImageSizes(satellite=(32, 32), ground=(224, 1232))
    ds, report = make_pair_dataset(split, sizes, training=False, batch_size=2,
                                   return_report=True)
    out = collect(report.track(ds))
    assert list(out["index"]) == [1]
    np.testing.assert_allclose(out["ground"][0], net_input_np(decoded(split.ground_paths[1])),
                               atol=1e-4)
    (item,) = report.end_epoch().skipped
    assert item.index == 0 and item.path == split.ground_paths[0] and "220x1232" in item.reason


def test_cvact_pipeline_crops_central_rows_and_keeps_order(tmp_path):
    write_cvact(str(tmp_path), sat=(48, 48), grd=(32, 64))
    split = load_cvact_split(str(tmp_path), "train")
    out = collect(make_pair_dataset(split, ImageSizes((32, 32), (8, 32)), training=False,
                                    batch_size=2))
    assert list(out["index"]) == [0, 1, 2]
    for i in range(3):
        ref = net_input_np(area_resize_np(decoded(split.ground_paths[i])[8:24], 8, 32))
        np.testing.assert_allclose(out["ground"][i], ref, atol=2e-3)


def test_image_dataset_and_distractors_appended(cvusa, tmp_path):
    split = load_cvusa_split(cvusa, "val")
    for k in range(3):
        save_jpeg(str(tmp_path / f"d{k}.jpg"), smooth_image(70, 70, 900 + k))
    db, report = make_satellite_database(split, (64, 64), batch_size=3,
                                         distractor_dir=str(tmp_path), return_report=True)
    out = collect(report.track(db))
    assert list(out["index"]) == list(range(8)) and out["image"].shape == (8, 64, 64, 3)
    for i, path in enumerate(split.satellite_paths + [str(tmp_path / f"d{k}.jpg")
                                                      for k in range(3)]):
        ref = net_input_np(area_resize_np(decoded(path), 64, 64))
        np.testing.assert_allclose(out["image"][i], ref, atol=2e-3)
    assert report.end_epoch().num_skipped == 0
    grd = collect(make_image_dataset(split.ground_paths, (32, 128), "ground", 4))
    assert list(grd["index"]) == [0, 1, 2, 3, 4] and grd["image"].shape == (5, 32, 128, 3)
    with pytest.raises(ValueError, match="kind"):
        make_image_dataset(split.ground_paths, (32, 128), "aerial", 4)


def test_skip_report_counts_unused_tail_not_as_bad():
    report = SkipReport(5, checker=lambda i: [(f"p{i}", "bad")] if i == 2 else [], name="t")
    report.observe(np.array([0, 4]))
    report.observe(tf.constant([1], tf.int64))
    skips = report.end_epoch(log_result=False)
    assert skips.num_seen == 3 and skips.num_skipped == 1 and skips.num_unused == 1
    assert skips.paths == ["p2"]


# ----------------------------------------------------------------- University-1652 wiring

U_SIZES = ImageSizes(satellite=(32, 32), ground=(24, 24))


@pytest.fixture(scope="module")
def univ(tmp_path_factory):
    """6 buildings x 3 drone views (40x40 JPEG) + one 48x48 satellite each: 18 pairs."""
    root = tmp_path_factory.mktemp("u1652")
    sat, grd, labels = [], [], []
    for c in range(6):
        s_path = str(root / f"sat{c}.jpg")
        save_jpeg(s_path, smooth_image(48, 48, 100 + c))
        for v in range(3):
            g_path = str(root / f"drone{c}_{v}.jpg")
            save_jpeg(g_path, smooth_image(40, 40, 200 + 10 * c + v))
            sat.append(s_path)
            grd.append(g_path)
            labels.append(1000 + 7 * c)  # arbitrary ids, not 0..C-1
    return PairSplit("u1652/train", sat, grd, dataset="university1652",
                     labels=np.array(labels))


def _epochs(ds, n):
    return [[{k: v.numpy() for k, v in b.items()} for b in ds] for _ in range(n)]


def test_labelled_training_batches_are_class_unique_and_reseeded_per_epoch(univ):
    from cvmnet_tf.data.sampling import max_class_unique_batches

    ds = make_pair_dataset(univ, U_SIZES, training=True, batch_size=4, seed=3)
    epochs = _epochs(ds, 2)
    n_batches = max_class_unique_batches(univ.labels, 4)
    assert n_batches == 4  # 6 classes x 3 views: at most 4 blocks of 4 distinct labels
    orders = []
    for epoch in epochs:
        assert len(epoch) == n_batches
        idx = np.concatenate([b["index"] for b in epoch])
        assert len(set(idx)) == len(idx) == 16 and set(idx) <= set(range(18))
        for b in epoch:
            assert len(set(univ.labels[b["index"]])) == 4, univ.labels[b["index"]]
        orders.append(idx)
    assert not np.array_equal(orders[0], orders[1])  # a new order each epoch
    # same seed: the same two epochs (order and augmentation); another seed: another order
    again = _epochs(make_pair_dataset(univ, U_SIZES, training=True, batch_size=4, seed=3), 2)
    for e1, e2 in zip(epochs, again):
        for b1, b2 in zip(e1, e2):
            np.testing.assert_array_equal(b1["index"], b2["index"])
            np.testing.assert_array_equal(b1["satellite"], b2["satellite"])
    other = _epochs(make_pair_dataset(univ, U_SIZES, training=True, batch_size=4, seed=4), 1)
    assert not np.array_equal(np.concatenate([b["index"] for b in other[0]]), orders[0])
    # drone images: area resize to the ground size, no crop, no augmentation
    for b in epochs[0]:
        for j, i in enumerate(b["index"]):
            ref = net_input_np(area_resize_np(decoded(univ.ground_paths[i]), 24, 24))
            np.testing.assert_allclose(b["ground"][j], ref, atol=2e-3)
            assert b["satellite"][j].shape == (32, 32, 3)


def test_labelled_training_skips_bad_pair_without_mixing_blocks(univ, tmp_path):
    bad = str(tmp_path / "bad.jpg")
    open(bad, "wb").write(b"\xff\xd8" + os.urandom(200) + b"\xff\xd9")  # decoder raises
    split = univ.subset(range(18))
    split.ground_paths[4] = bad
    ds, report = make_pair_dataset(split, U_SIZES, training=True, batch_size=4, seed=1,
                                   return_report=True)
    for _ in range(2):
        batches = [{k: v.numpy() for k, v in b.items()} for b in report.track(ds)]
        # the block that held pair 4 is dropped whole, the others stay class-unique
        assert 3 <= len(batches) <= 4
        for b in batches:
            assert b["index"].shape == (4,) and 4 not in b["index"]
            assert len(set(split.labels[b["index"]])) == 4
        skips = report.end_epoch(log_result=False)
        assert [(s.index, s.path) for s in skips.skipped] == [(4, bad)]


def test_labelled_training_needs_enough_labels(univ):
    with pytest.raises(ValueError, match="distinct labels"):
        make_pair_dataset(univ, U_SIZES, training=True, batch_size=7)
    # evaluation / shuffle=False ignore the labels: split order
    out = collect(make_pair_dataset(univ, U_SIZES, training=False, batch_size=7))
    assert list(out["index"]) == list(range(18))


def test_image_datasets_for_university1652(univ):
    paths = univ.ground_paths[:5]
    out = collect(make_image_dataset(paths, (24, 24), "ground", 2, dataset="university1652"))
    assert list(out["index"]) == [0, 1, 2, 3, 4]
    for i, p in enumerate(paths):
        np.testing.assert_allclose(out["image"][i], net_input_np(
            area_resize_np(decoded(p), 24, 24)), atol=2e-3)
    sats = sorted(set(univ.satellite_paths))
    out = collect(make_image_dataset(sats, (32, 32), "satellite", 4, dataset="university1652"))
    assert list(out["index"]) == list(range(6))
    for i, p in enumerate(sats):
        np.testing.assert_allclose(out["image"][i], net_input_np(
            area_resize_np(decoded(p), 32, 32)), atol=2e-3)
