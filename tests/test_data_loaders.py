"""Split loaders on small fixture trees in each dataset's real layout.

The ``write_*`` helpers are also used by test_data_pipeline.py.
"""
import logging
import os

import numpy as np
import pytest
import scipy.io
from PIL import Image

from cvmnet_tf.data import (ImageSizes, list_distractor_images, load_cvact_split,
                            load_cvusa_split, load_pair_list_split, load_split,
                            load_vohays_split)


def save_jpeg(path, img, quality=95):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(img).save(path, format="JPEG", quality=quality)


def smooth_image(h, w, seed):
    """A smooth colour pattern (JPEG-friendly), uint8 (h, w, 3)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    chans = [127 + 100 * np.sin(x / (3 + rng.uniform(0, 5)) + y / (4 + rng.uniform(0, 5)) + c)
             for c in range(3)]
    return np.clip(np.stack(chans, -1), 0, 255).astype(np.uint8)


def write_cvusa(root, n_train=5, n_val=3, sat=(75, 75), grd=(32, 128)):
    """CVUSA tree: bingmap/19/<id>.jpg, streetview/panos/<id>.jpg, splits/*-19zl.csv."""
    os.makedirs(os.path.join(root, "splits"), exist_ok=True)
    images = {}
    for split, start, n in (("train", 0, n_train), ("val", 1000, n_val)):
        lines = []
        for i in range(start, start + n):
            pid = f"{i:07d}"
            s_rel, g_rel = f"bingmap/19/{pid}.jpg", f"streetview/panos/{pid}.jpg"
            s_img, g_img = smooth_image(*sat, seed=2 * i), smooth_image(*grd, seed=2 * i + 1)
            save_jpeg(os.path.join(root, s_rel), s_img)
            save_jpeg(os.path.join(root, g_rel), g_img)
            images[pid] = (s_img, g_img)
            lines.append(f"{s_rel},{g_rel},annotations/{pid}.png")
        with open(os.path.join(root, "splits", f"{split}-19zl.csv"), "w") as f:
            f.write("\n".join(lines) + "\n")
    return images


def write_cvact(root, n=6, sat=(48, 48), grd=(32, 64), cell_ids=False):
    """CVACT tree + ACT_data.mat in the OriCNN structure (1-based index vectors)."""
    ids = [f"pano{i:04d}xyz" for i in range(n)]
    for i, pid in enumerate(ids):
        save_jpeg(os.path.join(root, "satview_polish", f"{pid}_satView_polish.jpg"),
                  smooth_image(*sat, seed=10 + i))
        save_jpeg(os.path.join(root, "streetview", f"{pid}_grdView.jpg"),
                  smooth_image(*grd, seed=50 + i))
    utm = np.stack([300000 + 10.0 * np.arange(n), 6000000 + 5.0 * np.arange(n)], 1)
    pano = np.array(ids, dtype=object).reshape(-1, 1) if cell_ids else np.array(ids)
    scipy.io.savemat(os.path.join(root, "ACT_data.mat"), {
        "panoIds": pano, "utm": utm,
        "trainSet": {"trainInd": np.array([[5], [1], [3]], np.float64)},
        "valSet": {"valInd": np.array([[2], [4]], np.float64)},
        "valSetAll": {"valInd": np.array([[6], [2], [4]], np.float64)},
    })
    return ids, utm


def write_vohays(root, n_train=4, n_test=3, sat=(50, 50), grd=(40, 40)):
    """gt-crossview tree: list files with '<relative path> <label>' lines."""
    for split, n in (("train", n_train), ("test_denver", n_test)):
        sv, ov = [], []
        for i in range(n):
            city = "atlanta" if split == "train" else "denver"
            g_rel, s_rel = f"{city}/streetview/{i}.jpg", f"{city}/overhead/{i}.jpg"
            save_jpeg(os.path.join(root, g_rel), smooth_image(*grd, seed=100 + i))
            save_jpeg(os.path.join(root, s_rel), smooth_image(*sat, seed=200 + i))
            sv.append(f"{g_rel} {i}")
            ov.append(f"{s_rel} {i}")
        for kind, lines in (("streetview", sv), ("overhead", ov)):
            with open(os.path.join(root, f"{split}.{kind}.txt"), "w") as f:
                f.write("\n".join(lines) + "\n")


def test_cvusa_pairs_in_split_order(tmp_path):
    write_cvusa(str(tmp_path))
    train = load_cvusa_split(str(tmp_path), "train")
    assert len(train) == 5 and train.dataset == "cvusa" and train.utm is None
    assert train.ids == [f"{i:07d}" for i in range(5)]
    assert train.satellite_paths[2] == os.path.join(str(tmp_path), "bingmap/19/0000002.jpg")
    assert train.ground_paths[2] == os.path.join(str(tmp_path), "streetview/panos/0000002.jpg")
    val = load_split("cvusa", str(tmp_path), "val")
    assert val.ids == ["0001000", "0001001", "0001002"] and not val.dropped
    assert load_cvusa_split(str(tmp_path), "test").ids == val.ids


def test_missing_folder_and_split_file_errors_name_the_path(tmp_path):
    missing = str(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_cvusa_split(missing, "train")
    with pytest.raises(FileNotFoundError, match="train-19zl.csv"):
        load_cvusa_split(str(tmp_path), "train")
    with pytest.raises(FileNotFoundError, match="ACT_data.mat"):
        load_cvact_split(str(tmp_path), "train")
    with pytest.raises(FileNotFoundError, match="train.streetview.txt"):
        load_vohays_split(str(tmp_path), "train")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        list_distractor_images(missing)
    with pytest.raises(ValueError, match="unknown dataset"):
        load_split("kitti", str(tmp_path), "train")


def test_malformed_split_line_names_file_and_line(tmp_path):
    os.makedirs(tmp_path / "splits")
    (tmp_path / "splits" / "train-19zl.csv").write_text("a.jpg,b.jpg,c\njust-one-field\n")
    with pytest.raises(ValueError, match=r"train-19zl.csv:2"):
        load_cvusa_split(str(tmp_path), "train", check_files=False)


def test_split_line_to_missing_file_is_reported_and_dropped(tmp_path, caplog):
    write_cvusa(str(tmp_path))
    gone = tmp_path / "streetview" / "panos" / "0000003.jpg"
    os.remove(gone)
    with caplog.at_level(logging.WARNING, logger="cvmnet_tf.data"):
        train = load_cvusa_split(str(tmp_path), "train")
    assert train.ids == ["0000000", "0000001", "0000002", "0000004"]
    assert [(d.index, d.path) for d in train.dropped] == [(3, str(gone))]
    assert "dropped 1 pair" in caplog.text and str(gone) in caplog.text


@pytest.mark.parametrize("cell_ids", [False, True])
def test_cvact_uses_one_based_indices_and_keeps_utm(tmp_path, cell_ids):
    ids, utm = write_cvact(str(tmp_path), cell_ids=cell_ids)
    train = load_cvact_split(str(tmp_path), "train")
    assert train.ids == [ids[4], ids[0], ids[2]]
    np.testing.assert_array_equal(train.utm, utm[[4, 0, 2]])
    assert train.satellite_paths[0] == os.path.join(
        str(tmp_path), "satview_polish", f"{ids[4]}_satView_polish.jpg")
    assert train.ground_paths[0] == os.path.join(str(tmp_path), "streetview",
                                                 f"{ids[4]}_grdView.jpg")
    assert load_cvact_split(str(tmp_path), "val").ids == [ids[1], ids[3]]
    test = load_split("cvact", str(tmp_path), "test")
    assert test.ids == [ids[5], ids[1], ids[3]] and test.dataset == "cvact"
    np.testing.assert_array_equal(test.utm, utm[[5, 1, 3]])


def test_cvact_missing_image_keeps_utm_aligned(tmp_path):
    ids, utm = write_cvact(str(tmp_path))
    os.remove(tmp_path / "satview_polish" / f"{ids[0]}_satView_polish.jpg")
    train = load_cvact_split(str(tmp_path), "train")
    assert train.ids == [ids[4], ids[2]]
    np.testing.assert_array_equal(train.utm, utm[[4, 2]])
    assert len(train.dropped) == 1 and ids[0] in train.dropped[0].path


def test_vohays_lists_pair_line_by_line(tmp_path):
    write_vohays(str(tmp_path))
    train = load_vohays_split(str(tmp_path), "train")
    assert len(train) == 4 and train.dataset == "vohays"
    assert train.ground_paths[1] == os.path.join(str(tmp_path), "atlanta/streetview/1.jpg")
    assert train.satellite_paths[1] == os.path.join(str(tmp_path), "atlanta/overhead/1.jpg")
    test = load_vohays_split(str(tmp_path), "test")  # finds test_denver.*.txt
    assert [os.path.basename(p) for p in test.ground_paths] == ["0.jpg", "1.jpg", "2.jpg"]
    assert "denver" in test.ground_paths[0]
    val = load_vohays_split(str(tmp_path), "val", val_lines=1)
    rest = load_vohays_split(str(tmp_path), "train", val_lines=1, holdout=True)
    assert val.ground_paths == train.ground_paths[:1]
    assert rest.ground_paths == train.ground_paths[1:]
    explicit = load_vohays_split(str(tmp_path), "test", streetview_list="train.streetview.txt",
                                 overhead_list="train.overhead.txt")
    assert explicit.satellite_paths == train.satellite_paths
    with pytest.raises(FileNotFoundError, match="seattle"):
        load_vohays_split(str(tmp_path), "test", test_city="seattle")


def test_vohays_lists_of_different_length_rejected(tmp_path):
    write_vohays(str(tmp_path))
    with open(tmp_path / "train.overhead.txt", "a") as f:
        f.write("atlanta/overhead/0.jpg 9\n")
    with pytest.raises(ValueError, match="differ in length"):
        load_vohays_split(str(tmp_path), "train")


def test_plain_pair_list(tmp_path):
    write_vohays(str(tmp_path))
    (tmp_path / "pairs.txt").write_text(
        "# ground satellite\natlanta/streetview/2.jpg atlanta/overhead/2.jpg\n"
        "atlanta/streetview/0.jpg,atlanta/overhead/0.jpg\n")
    split = load_split("pairs", str(tmp_path), "pairs.txt")
    assert split.ground_paths == [os.path.join(str(tmp_path), "atlanta/streetview/2.jpg"),
                                  os.path.join(str(tmp_path), "atlanta/streetview/0.jpg")]
    assert split.satellite_paths[0].endswith("atlanta/overhead/2.jpg")
    (tmp_path / "bad.txt").write_text("only_one_path.jpg\n")
    with pytest.raises(ValueError, match="bad.txt:1"):
        load_pair_list_split(str(tmp_path), "bad.txt")


def test_distractor_listing_sorted_and_images_only(tmp_path):
    for name in ("b.jpg", "a.png", "c.JPG"):
        save_jpeg(str(tmp_path / name), smooth_image(8, 8, 0))
    (tmp_path / "notes.txt").write_text("x")
    assert [os.path.basename(p) for p in list_distractor_images(str(tmp_path))] == \
        ["a.png", "b.jpg", "c.JPG"]
    os.makedirs(tmp_path / "empty")
    with pytest.raises(ValueError, match="no image"):
        list_distractor_images(str(tmp_path / "empty"))


def test_image_sizes():
    assert ImageSizes.paper() == ImageSizes((512, 512), (224, 1232))
    assert ImageSizes.paper().is_paper_ground and not ImageSizes.small().is_paper_ground
    assert ImageSizes.paper("vohays").ground == (224, 224)
    with pytest.raises(ValueError, match="ground"):
        ImageSizes(ground=(0, 5))
