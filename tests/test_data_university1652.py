"""University-1652 loader (fixture trees in the real layout) and the class-unique sampler."""
import logging
import os
import re

import numpy as np
import pytest
from PIL import Image

import cvmnet_tf.data as data
from cvmnet_tf.data import (LabelledImages, PairSplit, RetrievalSplit, class_unique_order,
                            load_split, load_university1652_split)
from cvmnet_tf.data.sampling import max_class_unique_batches
from cvmnet_tf.data.university1652 import TASKS

TRAIN = {"0003": (1, 3), "0001": (1, 2), "0012": (1, 1)}  # id -> (satellite, drone) images
TEST = {  # folder -> {id: number of images}
    "query_drone": {"0101": 2, "0100": 3},
    "gallery_satellite": {"0100": 1, "0101": 1, "0150": 1},
    "query_satellite": {"0100": 1, "0101": 1},
    "gallery_drone": {"0100": 2, "0101": 1, "0150": 2},
    "query_street": {"0100": 1},
}


def tiny_jpeg(path, seed=0, ext="JPEG"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    img = np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(img).save(path, format=ext)


def drone_name(k):
    return f"image-{k + 1:02d}.jpeg"


def write_university1652(root, train=TRAIN, test=TEST):
    """Real layout: train/{satellite,drone,street,google}/<id>/..., test/<folder>/<id>/..."""
    for sid, (n_sat, n_drone) in train.items():
        for k in range(n_sat):
            tiny_jpeg(os.path.join(root, "train", "satellite", sid,
                                   f"{sid}.jpg" if k == 0 else f"{sid}_{k}.jpg"))
        for k in range(n_drone):
            tiny_jpeg(os.path.join(root, "train", "drone", sid, drone_name(k)), seed=k)
        tiny_jpeg(os.path.join(root, "train", "street", sid, "street.jpg"))
        tiny_jpeg(os.path.join(root, "train", "google", sid, "google.png"), ext="PNG")
    for folder, ids in test.items():
        for sid, n in ids.items():
            for k in range(n):
                name = f"{sid}.jpg" if "satellite" in folder else drone_name(k)
                tiny_jpeg(os.path.join(root, "test", folder, sid, name), seed=k)


def j(*parts):
    return os.path.join(*parts)


@pytest.fixture
def root(tmp_path):
    write_university1652(str(tmp_path))
    return str(tmp_path)


# ----------------------------------------------------------------------------- loader
def test_train_pairs_labels_ids_exactly(root):
    split = load_university1652_split(root, "train")
    assert isinstance(split, PairSplit) and split.dataset == "university1652"
    assert split.name == "university1652/train" and split.utm is None and not split.dropped
    exp_ids = ["0001"] * 2 + ["0003"] * 3 + ["0012"]
    exp_drone = [j(root, "train", "drone", i, drone_name(k))
                 for i, n in (("0001", 2), ("0003", 3), ("0012", 1)) for k in range(n)]
    assert split.ids == exp_ids
    assert split.ground_paths == exp_drone
    assert split.satellite_paths == [j(root, "train", "satellite", i, f"{i}.jpg") for i in exp_ids]
    assert split.labels.dtype == np.int64
    np.testing.assert_array_equal(split.labels, [1, 1, 3, 3, 3, 12])


def test_train_image_names_filtered_sorted_case_insensitive(root):
    d = j(root, "train", "drone", "0012")
    tiny_jpeg(j(d, "a.PNG"), ext="PNG")
    tiny_jpeg(j(d, "b.JPG"))
    with open(j(d, "notes.txt"), "w") as f:
        f.write("x")
    os.makedirs(j(d, "sub.jpg"))  # a folder with an image-like name
    split = load_university1652_split(root, "train")
    got = [os.path.basename(p) for p, i in zip(split.ground_paths, split.ids) if i == "0012"]
    assert got == ["a.PNG", "b.JPG", "image-01.jpeg"]
    assert [d_.path for d_ in split.dropped] == [j(d, "sub.jpg")]
    unchecked = load_university1652_split(root, "train", check_files=False)
    assert j(d, "sub.jpg") in unchecked.ground_paths and not unchecked.dropped


def test_train_id_without_satellite_or_drone_dropped_and_reported(root, caplog):
    tiny_jpeg(j(root, "train", "drone", "0200", drone_name(0)))     # no satellite
    tiny_jpeg(j(root, "train", "satellite", "0300", "0300.jpg"))     # no drone
    os.makedirs(j(root, "train", "drone", "0400"))                    # empty id folder
    tiny_jpeg(j(root, "train", "satellite", "0400", "0400.jpg"))
    with open(j(root, "train", "drone", "README.txt"), "w") as f:  # non-directory entry
        f.write("x")
    os.makedirs(j(root, "train", "drone", "misc"))                   # not a numeric id
    with caplog.at_level(logging.WARNING, logger="cvmnet_tf.data"):
        split = load_university1652_split(root, "train")
    assert sorted(set(split.ids)) == ["0001", "0003", "0012"] and len(split) == 6
    dropped = {d.path: d.reason for d in split.dropped}
    assert set(dropped) == {j(root, "train", "drone", "0200"),
                            j(root, "train", "satellite", "0300"),
                            j(root, "train", "drone", "0400"),  # empty, and hence:
                            j(root, "train", "satellite", "0400"),
                            j(root, "train", "drone", "README.txt"),
                            j(root, "train", "drone", "misc")}
    assert "no satellite image" in dropped[j(root, "train", "drone", "0200")]
    assert "no drone image" in dropped[j(root, "train", "satellite", "0300")]
    assert "no image" in dropped[j(root, "train", "drone", "0400")]
    assert "no drone image" in dropped[j(root, "train", "satellite", "0400")]
    assert "not a building-id folder" in dropped[j(root, "train", "drone", "README.txt")]
    assert "not a numeric building id" in dropped[j(root, "train", "drone", "misc")]
    for path in dropped:
        assert path in caplog.text


def test_test_drone_to_satellite(root):
    split = load_university1652_split(root, "test")
    assert isinstance(split, RetrievalSplit) and split.task == "drone_to_satellite"
    assert split.name == "university1652/test/drone_to_satellite"
    q, g = split.query, split.gallery
    assert isinstance(q, LabelledImages) and q.kind == "ground" and g.kind == "satellite"
    assert q.paths == [j(root, "test", "query_drone", "0100", drone_name(k)) for k in range(3)] + \
        [j(root, "test", "query_drone", "0101", drone_name(k)) for k in range(2)]
    np.testing.assert_array_equal(q.labels, [100, 100, 100, 101, 101])
    assert g.paths == [j(root, "test", "gallery_satellite", i, f"{i}.jpg")
                       for i in ("0100", "0101", "0150")]
    np.testing.assert_array_equal(g.labels, [100, 101, 150])
    assert g.labels.dtype == np.int64 and len(split) == 5
    assert q.dataset == g.dataset == split.dataset == "university1652"
    assert not q.dropped and not g.dropped


def test_test_satellite_to_drone(root):
    split = load_split("university1652", root, "test", task="satellite_to_drone")
    q, g = split.query, split.gallery
    assert split.task == "satellite_to_drone" and q.kind == "satellite" and g.kind == "ground"
    assert q.paths == [j(root, "test", "query_satellite", i, f"{i}.jpg") for i in ("0100", "0101")]
    np.testing.assert_array_equal(q.labels, [100, 101])
    assert g.paths == [j(root, "test", "gallery_drone", i, drone_name(k))
                       for i, n in (("0100", 2), ("0101", 1), ("0150", 2)) for k in range(n)]
    np.testing.assert_array_equal(g.labels, [100, 100, 101, 150, 150])


def test_distractors_appended_with_label_minus_one(root, tmp_path_factory):
    dis = str(tmp_path_factory.mktemp("distractors"))
    tiny_jpeg(j(dis, "b.jpg"))
    tiny_jpeg(j(dis, "nested", "a.png"), ext="PNG")
    tiny_jpeg(j(dis, "A.JPEG"))
    with open(j(dis, "list.txt"), "w") as f:
        f.write("x")
    split = load_university1652_split(root, "test", distractor_dir=dis)
    g = split.gallery
    assert g.paths[:3] == [j(root, "test", "gallery_satellite", i, f"{i}.jpg")
                           for i in ("0100", "0101", "0150")]
    assert g.paths[3:] == sorted([j(dis, "A.JPEG"), j(dis, "b.jpg"), j(dis, "nested", "a.png")])
    np.testing.assert_array_equal(g.labels, [100, 101, 150, -1, -1, -1])
    assert dis in g.source and len(split.query) == 5
    with pytest.raises(ValueError, match="drone_to_satellite"):
        load_university1652_split(root, "test", task="satellite_to_drone", distractor_dir=dis)
    with pytest.raises(ValueError, match="distractor_dir"):
        load_university1652_split(root, "train", distractor_dir=dis)
    missing = j(dis, "nowhere")
    with pytest.raises(FileNotFoundError, match=re.escape(missing)):
        load_university1652_split(root, "test", distractor_dir=missing)
    gallery_dir = j(root, "test", "gallery_satellite")
    with pytest.raises(ValueError, match="query set or gallery"):
        load_university1652_split(root, "test", distractor_dir=gallery_dir)


def test_query_id_missing_from_gallery_dropped_with_warning(root, caplog):
    tiny_jpeg(j(root, "test", "query_drone", "0777", drone_name(0)))
    tiny_jpeg(j(root, "test", "query_drone", "0777", drone_name(1)))
    with caplog.at_level(logging.WARNING, logger="cvmnet_tf.data"):
        split = load_university1652_split(root, "test")
    assert 777 not in split.query.labels and len(split.query) == 5
    folder = j(root, "test", "query_drone", "0777")
    assert [(d.index, d.path) for d in split.query.dropped] == [(-1, folder)]
    assert "2 query image(s)" in split.query.dropped[0].reason
    assert folder in caplog.text and "no true match" in caplog.text


def test_errors_name_the_path(root, tmp_path_factory):
    missing = j(root, "nowhere")
    with pytest.raises(FileNotFoundError, match=re.escape(missing)):
        load_university1652_split(missing, "train")
    empty = str(tmp_path_factory.mktemp("empty"))
    with pytest.raises(FileNotFoundError, match=re.escape(j(empty, "train"))):
        load_university1652_split(empty, "train")
    with pytest.raises(FileNotFoundError, match=re.escape(j(empty, "test"))):
        load_university1652_split(empty, "test")
    with pytest.raises(ValueError, match="split must be one of"):
        load_university1652_split(root, "training")
    with pytest.raises(ValueError, match="no validation split"):
        load_university1652_split(root, "val")
    with pytest.raises(ValueError, match="task must be one of"):
        load_university1652_split(root, "test", task="street_to_satellite")
    for folder, task in (("gallery_satellite", "drone_to_satellite"),
                         ("query_satellite", "satellite_to_drone")):
        os.rename(j(root, "test", folder), j(root, "test", folder + "_old"))
        with pytest.raises(FileNotFoundError, match=re.escape(j(root, "test", folder))):
            load_university1652_split(root, "test", task=task)
    os.rename(j(root, "train", "drone"), j(root, "train", "drone_old"))
    with pytest.raises(FileNotFoundError, match=re.escape(j(root, "train", "drone"))):
        load_university1652_split(root, "train")


def test_duplicate_id_and_empty_result_errors(root, tmp_path_factory):
    tiny_jpeg(j(root, "train", "satellite", "1", "1.jpg"))
    with pytest.raises(ValueError, match=r"'0001' and '1'.*building id 1"):
        load_university1652_split(root, "train")
    lone = str(tmp_path_factory.mktemp("lone"))
    write_university1652(lone, train={"0001": (1, 0)}, test={"query_drone": {"0005": 1},
                                                             "gallery_satellite": {"0006": 1}})
    tiny_jpeg(j(lone, "train", "drone", "0002", drone_name(0)))  # no satellite for it
    with pytest.raises(ValueError, match="no building has both"):
        load_university1652_split(lone, "train")
    with pytest.raises(ValueError, match="no query building"):
        load_university1652_split(lone, "test")


def test_lazy_exports_and_tasks():
    assert TASKS == ("drone_to_satellite", "satellite_to_drone")
    assert data.load_university1652_split is load_university1652_split
    assert data.class_unique_order is class_unique_order


# ----------------------------------------------------------------------------- sampler
def blocks_ok(order, labels, b):
    assert order.dtype == np.int64 and order.ndim == 1 and len(order) % b == 0
    assert len(np.unique(order)) == len(order)  # no index twice
    assert order.min(initial=0) >= 0 and order.max(initial=0) < len(labels)
    for blk in order.reshape(-1, b):
        assert len(set(labels[blk].tolist())) == b, labels[blk]


def test_sampler_balanced_classes_distinct_blocks_and_coverage():
    labels = np.repeat(np.arange(50) * 7 + 3, 4)  # 50 classes x 4 pairs, arbitrary label values
    labels = labels[np.random.default_rng(1).permutation(len(labels))]
    for b, expect in ((8, 200), (16, 192), (50, 200), (7, 196)):
        order = class_unique_order(labels, b, seed=0)
        blocks_ok(order, labels, b)
        assert len(order) == expect  # N - N mod b: >= 95% of 200 pairs used
        assert max_class_unique_batches(labels, b) * b == expect


def test_sampler_real_size_balanced():
    labels = np.repeat(np.arange(701), 54)  # University-1652 train: 701 ids x ~54 drones
    order = class_unique_order(labels, 32, seed=3)
    blocks_ok(order, labels, 32)
    assert len(order) == len(labels) - len(labels) % 32


def test_sampler_deterministic_in_seed_and_varies():
    labels = np.repeat(np.arange(20), 5)
    a, b_ = class_unique_order(labels, 10, seed=5), class_unique_order(labels, 10, seed=5)
    np.testing.assert_array_equal(a, b_)
    c = class_unique_order(labels, 10, seed=6)
    assert not np.array_equal(a, c)
    # the first block is not always the same classes (blocks are shuffled)
    firsts = {tuple(sorted(labels[class_unique_order(labels, 10, s)[:10]])) for s in range(5)}
    assert len(firsts) > 1


def test_sampler_unbalanced_reaches_upper_bound():
    rng = np.random.default_rng(0)
    for trial in range(200):
        n_cls, b = int(rng.integers(1, 10)), int(rng.integers(1, 6))
        counts = rng.geometric(0.3, size=n_cls)
        labels = np.repeat(np.arange(n_cls), counts)
        # upper bound: a class gives at most one pair to each block -> m blocks need
        # sum_c min(n_c, m) >= m*b; searched here by brute force
        bound = max(m for m in range(len(labels) // b + 1)
                    if np.minimum(counts, m).sum() >= m * b)
        if n_cls < b:
            assert max_class_unique_batches(labels, b) == 0
            continue
        order = class_unique_order(labels, b, seed=trial)
        blocks_ok(order, labels, b)
        assert len(order) == bound * b, (counts, b)
    # one dominant class: its surplus is left out
    labels = np.array([0] * 10 + [1, 2, 3])
    order = class_unique_order(labels, 2, seed=0)
    blocks_ok(order, labels, 2)
    assert len(order) == 6 and np.sum(labels[order] == 0) == 3


def test_sampler_errors():
    with pytest.raises(ValueError, match="at least 4 distinct labels, got 3"):
        class_unique_order([0, 0, 1, 1, 2, 2], 4, seed=0)
    with pytest.raises(ValueError, match="at least 1 distinct"):
        class_unique_order(np.zeros(0, np.int64), 1, seed=0)
    with pytest.raises(ValueError, match="batch_size"):
        class_unique_order([0, 1], 0, seed=0)
    with pytest.raises(ValueError, match="1-D"):
        class_unique_order(np.zeros((2, 2), np.int64), 1, seed=0)
    with pytest.raises(ValueError, match="integers"):
        class_unique_order([0.5, 1.0], 1, seed=0)
    order = class_unique_order([3.0, 4.0, 3.0, 4.0], 2, seed=0)  # integral floats accepted
    blocks_ok(order, np.array([3, 4, 3, 4]), 2)
    assert len(order) == 4
