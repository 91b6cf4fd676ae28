"""Synthetic University-1652 (Zheng et al., ACM MM 2020) in the real folder layout.

Every class ("building") is one place of the synthetic world; its folder name is a 4-digit
zero-padded id, train and test ids disjoint (a shuffled 0001..N, as the real ids are
interleaved). Files::

  train/satellite/<id>/<id>.jpg            one north-up tile per class
  train/drone/<id>/image-01.jpeg ...       views_per_class oblique drone views
  train/street/<id>/street-01.jpg ...      street_views_per_class ground crops
  test/query_satellite/<id>/<id>.jpg       test classes
  test/gallery_satellite/<id>/<id>.jpg     test classes + extra (satellite-only) classes
  test/query_drone/<id>/image-XX.jpeg      drone views of the test classes
  test/gallery_drone/<id>/image-XX.jpeg    drone views of the test + extra classes
  test/query_street/<id>/street-XX.jpg     street views of the test classes
  test/gallery_street/<id>/street-XX.jpg   other street views (other headings) of the
                                           test + extra classes
  synthetic_meta.json

As in the real data the same drone / satellite image appears in the query and the gallery
folder of the other direction (query_drone is a subset of gallery_drone). The real
``train/google`` folder (noisy web images) is not generated.

How places become buildings and their images: :mod:`cvmnet_tf.data.synthetic.buildings`.
"""
from __future__ import annotations

import dataclasses
import os
import time

import numpy as np

from cvmnet_tf.data.synthetic.buildings import (DRONE_FOV_DEG, FLIGHT_LEVELS, SPLITS, STREAM, iter_places,
                                                place_geometry, render_class)
from cvmnet_tf.data.synthetic.config import WorldConfig, seed_sequence
from cvmnet_tf.data.synthetic.files import (check_count, check_size, claim_output_dir, encode_image, save_bytes,
                                            save_json)

__all__ = ["write_university1652", "write_university1652_split", "FOLDERS"]

FOLDERS = ("train/satellite", "train/drone", "train/street", "test/query_satellite", "test/gallery_satellite",
           "test/query_drone", "test/gallery_drone", "test/query_street", "test/gallery_street")
_WHO = "write_university1652"


@dataclasses.dataclass
class _Settings:
    n_train: int
    n_test: int
    n_extra: int
    views: int
    n_street: int
    sat: tuple
    drone: tuple
    config: WorldConfig


def _check(num_train_classes, num_test_classes, views_per_class, num_extra_gallery_classes,
           street_views_per_class, satellite_size, drone_size, config) -> _Settings:
    n_train = check_count(_WHO, "num_train_classes", num_train_classes)
    n_test = check_count(_WHO, "num_test_classes", num_test_classes)
    views = check_count(_WHO, "views_per_class", views_per_class, 1)
    n_street = check_count(_WHO, "street_views_per_class", street_views_per_class)
    if num_extra_gallery_classes is None:
        n_extra = max(1, n_test // 4) if n_test else 0
    else:
        n_extra = check_count(_WHO, "num_extra_gallery_classes", num_extra_gallery_classes)
    if n_train + n_test + n_extra > 9999:
        raise ValueError(f"{_WHO}: {n_train + n_test + n_extra} classes do not fit 4-digit ids (max 9999)")
    sat = check_size(_WHO, "satellite_size", satellite_size)
    if sat[0] != sat[1]:
        raise ValueError(f"{_WHO}: satellite_size={satellite_size!r} must be square")
    drone = check_size(_WHO, "drone_size", drone_size)
    config = config or WorldConfig()
    if not isinstance(config, WorldConfig):
        raise ValueError(f"{_WHO}: config must be a WorldConfig, got {type(config).__name__}")
    return _Settings(n_train, n_test, n_extra, views, n_street, sat, drone, config)


def _class_ids(seed, st: _Settings):
    """(train, test, extra gallery) 4-digit ids: a shuffled 0001..N."""
    perm = np.random.default_rng(seed_sequence(seed, STREAM, 99)).permutation(st.n_train + st.n_test + st.n_extra)
    ids = [f"{int(v) + 1:04d}" for v in perm]
    return ids[:st.n_train], ids[st.n_train:st.n_train + st.n_test], ids[st.n_train + st.n_test:]


class _Folders:
    """Writes the images of the folder tree and counts them per folder."""

    def __init__(self, out_dir, st: _Settings, quality):
        self.out_dir, self.quality = out_dir, int(quality)
        self.counts = {f: 0 for f in FOLDERS}
        width = max(2, len(str(st.views)))
        self.drone_names = [f"image-{k + 1:0{width}d}.jpeg" for k in range(st.views)]
        swidth = max(2, len(str(st.n_street)))
        self.street_names = [f"street-{k + 1:0{swidth}d}.jpg" for k in range(st.n_street)]

    def encode(self, image):
        return encode_image(image, ".jpg", self.quality)

    def put(self, folders, cid, name, data):
        for folder in folders:
            save_bytes(os.path.join(self.out_dir, *folder.split("/"), cid, name), data)
            self.counts[folder] += 1

    def put_views(self, folders, cid, names, images):
        for name, img in zip(names, images):
            self.put(folders, cid, name, self.encode(img))


def _write_train(out: _Folders, ids, seed, st: _Settings):
    places = iter_places(SPLITS["train"], st.n_train, seed, st.config, st.sat[0], st.drone)
    for cid, (world, x, y, rng) in zip(ids, places):
        tile, drones, (streets,) = render_class(world, x, y, rng, st.config, st.sat[0], st.drone, st.views,
                                                (st.n_street,))
        out.put(("train/satellite",), cid, f"{cid}.jpg", out.encode(tile))
        out.put_views(("train/drone",), cid, out.drone_names, drones)
        out.put_views(("train/street",), cid, out.street_names, streets)


def _write_test(out: _Folders, test_ids, extra_ids, seed, st: _Settings):
    """Test classes go to the query and the gallery folders, extra classes to the galleries."""
    places = iter_places(SPLITS["test"], st.n_test + st.n_extra, seed, st.config, st.sat[0], st.drone)
    for i, (cid, (world, x, y, rng)) in enumerate(zip(test_ids + extra_ids, places)):
        is_test = i < st.n_test
        tile, drones, (q_streets, g_streets) = render_class(
            world, x, y, rng, st.config, st.sat[0], st.drone, st.views, (st.n_street if is_test else 0, st.n_street))
        query = ("test/query_satellite",) if is_test else ()
        out.put(("test/gallery_satellite",) + query, cid, f"{cid}.jpg", out.encode(tile))
        query = ("test/query_drone",) if is_test else ()
        out.put_views(("test/gallery_drone",) + query, cid, out.drone_names, drones)
        out.put_views(("test/query_street",), cid, out.street_names, q_streets)
        out.put_views(("test/gallery_street",), cid, out.street_names, g_streets)


def _meta(out_dir, out: _Folders, st: _Settings, seed, ids, secs):
    train_ids, test_ids, extra_ids = ids
    mpp, margin, spacing, region_m = place_geometry(st.config, st.drone, st.sat[0])
    return {"layout": "university1652", "out_dir": os.path.abspath(out_dir),
            "counts": out.counts,
            "classes": {"train": st.n_train, "test": st.n_test, "extra_gallery": st.n_extra},
            "ids": {"train": sorted(train_ids), "test": sorted(test_ids), "extra_gallery": sorted(extra_ids)},
            "seed": seed, "satellite_size": list(st.sat), "drone_size": list(st.drone),
            "street_size": list(st.drone), "views_per_class": st.views,
            "street_views_per_class": st.n_street,
            "drone": {"fov_deg": DRONE_FOV_DEG, "flight_levels_pitch_deg_range_scale":
                      [list(v) for v in FLIGHT_LEVELS]},
            "map": {"metres_per_pixel": mpp, "region_m": region_m, "margin_m": margin,
                    "class_spacing_m": spacing},
            "config": dataclasses.asdict(st.config), "seconds": round(secs, 3),
            "images_per_second": round(sum(out.counts.values()) / max(secs, 1e-9), 1),
            "generator": "cvmnet_tf.data.synthetic"}


def write_university1652(out_dir: str, num_train_classes: int, num_test_classes: int, *,
                         seed: int = 0, satellite_size=(128, 128), drone_size=(128, 128),
                         views_per_class: int = 4, num_extra_gallery_classes: int | None = None,
                         street_views_per_class: int = 1, config: WorldConfig | None = None,
                         jpeg_quality: int = 90) -> dict:
    """Writes a synthetic University-1652 dataset (see the module docstring for the files).

    Args:
      out_dir: dataset root (created): a missing or empty folder, or one the generator
        wrote (its files of the same names are replaced); any other folder is refused.
      num_train_classes, num_test_classes: classes (places) per split (>= 0; at most
        9999 classes in all, ids are 4 digits).
      seed: everything is a deterministic function of (seed, sizes, counts per class, config);
        the first n classes of a split do not depend on how many are asked for.
      satellite_size: (S, S) satellite tile pixels (square), covering config.tile_extent_m.
      drone_size: (H, W) drone view pixels (also the street view size).
      views_per_class: drone views per class (>= 1; the real data has 54).
      num_extra_gallery_classes: satellite/drone-only classes added to the test galleries
        (the real data has 250 next to 701); None -> max(1, num_test_classes // 4), and 0
        when num_test_classes is 0.
      street_views_per_class: street views per class in train/street, test/query_street
        and test/gallery_street (gallery ones at other headings).
      config: WorldConfig (tile extent, photometric strengths, location_tint...).
      jpeg_quality: JPEG quality of all images.
    Returns:
      dict with "layout" ("university1652"), "out_dir", "counts" {folder: images},
      "classes" {"train", "test", "extra_gallery"}, "satellite_size", "drone_size",
      "seconds", "images_per_second" (also saved to synthetic_meta.json).
    """
    st = _check(num_train_classes, num_test_classes, views_per_class, num_extra_gallery_classes,
                street_views_per_class, satellite_size, drone_size, config)
    claim_output_dir(out_dir)
    t0 = time.perf_counter()
    ids = _class_ids(seed, st)
    out = _Folders(out_dir, st, jpeg_quality)
    _write_train(out, ids[0], seed, st)
    _write_test(out, ids[1], ids[2], seed, st)
    info = _meta(out_dir, out, st, seed, ids, time.perf_counter() - t0)
    save_json(os.path.join(out_dir, "synthetic_meta.json"), info)
    return info


def write_university1652_split(out_dir: str, num_train: int = 64, num_val: int = 16, *, seed: int = 0,
                               satellite_size=None, ground_size=None, num_test: int | None = None,
                               native_sizes: bool = False, config: WorldConfig | None = None,
                               jpeg_quality: int = 90, write_annotations: bool = False,
                               workers: int | None = None, views_per_class: int = 4) -> dict:
    """:func:`write_university1652` with the arguments of
    :func:`cvmnet_tf.data.synthetic.write_dataset`: ``num_train`` / ``num_val`` count training
    / test buildings (``views_per_class`` drone views each), ``ground_size`` is the drone
    view size (default 128x128, as the satellite tiles). ``num_test``, ``native_sizes`` and
    ``write_annotations`` do not apply; ``workers`` is ignored (one process)."""
    if num_test or native_sizes or write_annotations:
        raise ValueError("write_dataset(layout='university1652'): num_test, native_sizes and "
                         "write_annotations do not apply (num_train / num_val count buildings)")
    return write_university1652(out_dir, num_train, num_val, seed=seed,
                                satellite_size=tuple(satellite_size or (128, 128)),
                                drone_size=tuple(ground_size or (128, 128)), config=config,
                                jpeg_quality=jpeg_quality, views_per_class=views_per_class)
