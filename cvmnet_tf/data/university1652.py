"""University-1652 loader (Zheng, Wei & Yang, ACM MM 2020): drone <-> satellite retrieval.

Layout (one folder per building; the folder name is the 4-digit building id, which is the
class label)::

    <data_dir>/train/satellite/<id>/<id>.jpg      1 satellite image per building (701 ids)
    <data_dir>/train/drone/<id>/image-NN.jpeg     ~54 drone images per building (37,854)
    <data_dir>/train/street/<id>/...               street view (not used here)
    <data_dir>/train/google/<id>/...               extra Google images (not used here)
    <data_dir>/test/query_drone/<id>/...           drone queries, 701 ids (37,855 images)
    <data_dir>/test/gallery_satellite/<id>/...     satellite gallery, 951 ids (701 + 250
                                                   buildings that are only distractors)
    <data_dir>/test/query_satellite/<id>/...       satellite queries, 701 ids
    <data_dir>/test/gallery_drone/<id>/...         drone gallery, 951 ids (51,355 images)
    <data_dir>/test/query_street/, gallery_street/ street view (not used here)
    <distractor_dir>/**/*.jpg                      optional extra satellite tiles (flat or
                                                   nested folders), e.g. University-160k

Checked against public material: the drone file names (``train/drone/1069/image-18.jpeg``),
the per-split counts above (37,854 training drone images of 701 buildings; 51,355 test
drone images and 951 satellite images of 951 buildings) and the test folder names
(``test/query_drone``, ``test/gallery_satellite``, ``test/query_satellite``,
``test/gallery_drone``) as read by the released baseline (torchvision ``ImageFolder``, one
sub-folder per building). The baseline numbers its classes by sorted folder position; we
use ``int(<id>)`` instead so that query and gallery labels agree even when one side lacks
some buildings.

Image files: names ending in .jpg / .jpeg / .png (any case), sorted by name. Building ids
are listed in numeric order. What is left out is logged (logger ``cvmnet_tf.data``) and
listed in ``.dropped`` as :class:`~cvmnet_tf.data.splits.DroppedItem` (``path`` = the
entry; ``index`` = the entry's position in its parent folder's sorted listing, or -1 for a
whole building left out because the other side lacks it):

- a file (or any non-folder entry) where a building folder is expected, or a folder whose
  name is not a number: ignored;
- a building folder without any image;
- (``check_files=True``) an image name that is not a readable regular file (e.g. a broken
  link);
- train: a building with drone images but no satellite image, or the reverse;
- test: a query building absent from the gallery (it would have no true match).

Unreadable image *contents* are handled later by the tf.data pipelines.
"""
from __future__ import annotations

import os

import numpy as np

from cvmnet_tf.utils.text import first_items

from .splits import (IMAGE_EXTENSIONS, DroppedItem, LabelledImages, PairSplit,
                     RetrievalSplit, list_distractor_images, log, require_dir)

DATASET = "university1652"
SPLITS = ("train", "test")
TASKS = ("drone_to_satellite", "satellite_to_drone")
# task -> ((query folder, query kind), (gallery folder, gallery kind)); drone = ground branch
TEST_FOLDERS = {
    "drone_to_satellite": (("query_drone", "ground"), ("gallery_satellite", "satellite")),
    "satellite_to_drone": (("query_satellite", "satellite"), ("gallery_drone", "ground")),
}


def _log_dropped(name: str, dropped: list, what: str) -> None:
    if not dropped:
        return
    log.warning("%s: left out %d %s:\n  %s", name, len(dropped), what,
                first_items([f"{d.path}: {d.reason}" for d in dropped], 10, "\n  "))


def scan_id_folders(view_dir: str, what: str, *, check_files: bool = True):
    """Images of each building in ``view_dir`` (``<view_dir>/<id>/<image>``).

    Returns ``(images, dropped)``: ``images`` maps ``int(id)`` to ``(id string, sorted list
    of image paths)`` for every building folder holding at least one image, in numeric id
    order; ``dropped`` lists the entries left out (see module docstring). Raises
    FileNotFoundError naming ``view_dir`` when it is not a folder, ValueError naming both
    folders when two folder names give the same id (e.g. ``0001`` and ``1``).
    """
    require_dir(view_dir, what)
    exts = tuple(e.lower() for e in IMAGE_EXTENSIONS)
    images, dropped = {}, []
    for pos, entry in enumerate(sorted(os.listdir(view_dir))):
        folder = os.path.join(view_dir, entry)
        if not os.path.isdir(folder):
            dropped.append(DroppedItem(pos, folder, "not a building-id folder (ignored)"))
            continue
        if not entry.isdigit():
            dropped.append(DroppedItem(pos, folder, "folder name is not a numeric building id "
                                       "(ignored)"))
            continue
        label = int(entry)
        if label in images:
            raise ValueError(f"{what} {view_dir!r}: folders {images[label][0]!r} and {entry!r} "
                             f"both name building id {label}")
        names = sorted(f for f in os.listdir(folder) if f.lower().endswith(exts))
        paths = []
        for f in names:
            path = os.path.join(folder, f)
            if check_files and not os.path.isfile(path):
                dropped.append(DroppedItem(pos, path, "not a readable image file (missing "
                                           "target or not a regular file)"))
            else:
                paths.append(path)
        if not paths:
            dropped.append(DroppedItem(pos, folder, f"no image ({', '.join(exts)}) in building "
                                       "folder"))
            continue
        images[label] = (entry, paths)
    return dict(sorted(images.items())), dropped


def _check_args(split: str, task: str) -> None:
    if split not in SPLITS:
        hint = " (University-1652 has no validation split; validate on 'test')" \
            if split in ("val", "validation") else ""
        raise ValueError(f"University-1652 split must be one of {SPLITS}, got {split!r}{hint}")
    if task not in TASKS:
        raise ValueError(f"University-1652 task must be one of {TASKS}, got {task!r}")


def _load_train(data_dir: str, check_files: bool) -> PairSplit:
    train_dir = require_dir(os.path.join(data_dir, "train"), "University-1652 train folder")
    sat_dir = os.path.join(train_dir, "satellite")
    drone_dir = os.path.join(train_dir, "drone")
    name = f"{DATASET}/train"
    require_dir(sat_dir, "University-1652 train satellite folder")
    require_dir(drone_dir, "University-1652 train drone folder")
    sat, dropped = scan_id_folders(sat_dir, "University-1652 train satellite folder",
                                   check_files=check_files)
    drone, drone_dropped = scan_id_folders(drone_dir, "University-1652 train drone folder",
                                           check_files=check_files)
    dropped += drone_dropped
    sat_paths, grd_paths, labels, ids = [], [], [], []
    for label in sorted(set(sat) | set(drone)):
        if label not in sat:
            dropped.append(DroppedItem(-1, os.path.dirname(drone[label][1][0]),
                                       f"building {drone[label][0]} has no satellite image in "
                                       f"{sat_dir}"))
            continue
        if label not in drone:
            dropped.append(DroppedItem(-1, os.path.dirname(sat[label][1][0]),
                                       f"building {sat[label][0]} has no drone image in "
                                       f"{drone_dir}"))
            continue
        sat_id, sat_images = sat[label]
        if len(sat_images) > 1:
            log.warning("%s: building %s has %d satellite images; pairing its drone images "
                        "with the first, %s", name, sat_id, len(sat_images), sat_images[0])
        drone_id, drone_images = drone[label]
        sat_paths += [sat_images[0]] * len(drone_images)
        grd_paths += drone_images
        labels += [label] * len(drone_images)
        ids += [drone_id] * len(drone_images)
    _log_dropped(name, dropped, "item(s)")
    if not grd_paths:
        raise ValueError(f"{name}: no building has both a satellite image in {sat_dir!r} and "
                         f"drone images in {drone_dir!r}")
    return PairSplit(name=name, satellite_paths=sat_paths, ground_paths=grd_paths, utm=None,
                     dataset=DATASET, ids=ids, dropped=dropped,
                     source=f"{sat_dir} + {drone_dir}",
                     labels=np.asarray(labels, dtype=np.int64))


def _flatten(images: dict):
    paths, labels = [], []
    for label, (_, imgs) in images.items():
        paths += imgs
        labels += [label] * len(imgs)
    return paths, labels


def _load_test(data_dir: str, task: str, distractor_dir: str | None,
               check_files: bool) -> RetrievalSplit:
    if distractor_dir is not None and task != "drone_to_satellite":
        raise ValueError(f"distractor_dir={distractor_dir!r}: satellite distractors only apply "
                         f"to task 'drone_to_satellite' (its gallery is satellite images), "
                         f"not {task!r}")
    test_dir = require_dir(os.path.join(data_dir, "test"), "University-1652 test folder")
    (q_folder, q_kind), (g_folder, g_kind) = TEST_FOLDERS[task]
    q_dir, g_dir = os.path.join(test_dir, q_folder), os.path.join(test_dir, g_folder)
    # check both folders exist before the (slow on the real data) listing
    require_dir(q_dir, f"University-1652 {q_folder} folder")
    require_dir(g_dir, f"University-1652 {g_folder} folder")
    query, q_dropped = scan_id_folders(q_dir, f"University-1652 {q_folder} folder",
                                       check_files=check_files)
    gallery, g_dropped = scan_id_folders(g_dir, f"University-1652 {g_folder} folder",
                                         check_files=check_files)
    q_name, g_name = f"{DATASET}/test/{q_folder}", f"{DATASET}/test/{g_folder}"
    unmatched = [label for label in query if label not in gallery]
    for label in unmatched:
        q_id, imgs = query.pop(label)
        q_dropped.append(DroppedItem(-1, os.path.dirname(imgs[0]),
                                     f"building {q_id} ({len(imgs)} query image(s)) has no "
                                     f"image in {g_dir} (no true match)"))
    _log_dropped(q_name, q_dropped, "query item(s)")
    _log_dropped(g_name, g_dropped, "gallery item(s)")
    if not query:
        raise ValueError(f"{q_name}: no query building of {q_dir!r} has an image in {g_dir!r}")
    q_paths, q_labels = _flatten(query)
    g_paths, g_labels = _flatten(gallery)
    g_source = g_dir
    if distractor_dir is not None:
        extra = list_distractor_images(distractor_dir, recursive=True)
        known = {os.path.realpath(p) for p in g_paths + q_paths}
        overlap = [p for p in extra if os.path.realpath(p) in known]
        if overlap:
            raise ValueError(f"distractor folder {distractor_dir!r} holds {len(overlap)} image(s) "
                             f"of the query set or gallery (e.g. {overlap[0]!r}); distractors "
                             "must be other images (label -1 matches nothing)")
        g_paths += extra
        g_labels += [-1] * len(extra)
        g_source = f"{g_dir} + {distractor_dir}"
        log.info("%s: appended %d distractor image(s) from %s", g_name, len(extra),
                 distractor_dir)
    q = LabelledImages(name=q_name, paths=q_paths, labels=np.asarray(q_labels, np.int64),
                       kind=q_kind, dataset=DATASET, dropped=q_dropped, source=q_dir)
    g = LabelledImages(name=g_name, paths=g_paths, labels=np.asarray(g_labels, np.int64),
                       kind=g_kind, dataset=DATASET, dropped=g_dropped, source=g_source)
    return RetrievalSplit(name=f"{DATASET}/test/{task}", query=q, gallery=g, task=task,
                          dataset=DATASET)


def load_university1652_split(data_dir: str, split: str, *, task: str = "drone_to_satellite",
                              distractor_dir: str | None = None, check_files: bool = True):
    """Load University-1652 (layout in the module docstring).

    split "train": a :class:`PairSplit` (``dataset="university1652"``) with one pair per
      training drone image, ``(train/satellite/<id>/<first image>, train/drone/<id>/<image>)``
      in (numeric id, file name) order; ``ground_paths`` are the drone images,
      ``labels`` int64 (N,) = ``int(id)``, ``ids`` the id folder names. ``task`` is only
      validated; ``distractor_dir`` is refused.
    split "test": a :class:`RetrievalSplit` for ``task``:
      "drone_to_satellite": query = test/query_drone (kind "ground"), gallery =
        test/gallery_satellite (kind "satellite") followed by every image under
        ``distractor_dir`` (searched recursively, sorted, label -1);
      "satellite_to_drone": query = test/query_satellite (kind "satellite"), gallery =
        test/gallery_drone (kind "ground"); ``distractor_dir`` raises ValueError.
      Labels are ``int(id)``; query buildings missing from the gallery are dropped and
      reported in ``query.dropped``.
    check_files: check that every listed image name is a regular file (drops broken links).

    Raises FileNotFoundError naming the path when ``data_dir``, ``train``/``test`` or a needed
    sub-folder (or ``distractor_dir``) is missing; ValueError for an unknown split/task, an
    empty result, distractors that overlap the query set/gallery, or two folders naming
    the same id.
    """
    _check_args(split, task)
    require_dir(data_dir, "University-1652 data folder")
    if split == "train":
        if distractor_dir is not None:
            raise ValueError(f"distractor_dir={distractor_dir!r} only applies to split 'test'")
        return _load_train(data_dir, check_files)
    return _load_test(data_dir, task, distractor_dir, check_files)
