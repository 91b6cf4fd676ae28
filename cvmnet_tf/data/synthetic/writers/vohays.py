"""Vo & Hays layout (gt-crossview style): images under ``<city>/streetview/<id>.jpg`` (square
ground crops, 90 degree field of view, random heading) and ``<city>/overhead/<id>.jpg``
(satellite tiles rotated so that the crop's heading points up); list files
``train.streetview.txt`` / ``train.overhead.txt`` (8 training cities; the real names) and
``test_denver.streetview.txt`` / ``test_denver.overhead.txt`` (the Denver test city; the
real test list names are not published, this is the first name the
``cvmnet_tf.data.vohays`` loader tries), one ``<relative path> <label>`` per line, line i
of one paired with line i of the other, label = the pair's integer id; plus
``train_pairs.txt`` / ``test_pairs.txt`` with ``<ground path> <satellite path>``. Vo & Hays
has no val split: the Denver test set gets ``num_test`` pairs, or ``num_val`` when
``num_test`` is None."""
from __future__ import annotations

import os

import numpy as np

from cvmnet_tf.data.synthetic.config import STREAMS, seed_sequence
from cvmnet_tf.data.synthetic.files import save_text
from cvmnet_tf.data.synthetic.runner import PairLayout, PairStream, plan_streams, write_pair_dataset
from cvmnet_tf.data.synthetic.world import WorldStyle

__all__ = ["LAYOUT", "TRAIN_CITIES", "TEST_CITY", "write_vohays"]

LAYOUT = PairLayout("vohays", STREAMS["vohays"], native=((250, 250), (230, 230)), small=((128, 128), (128, 128)),
                    square_ground=True)
TRAIN_CITIES = ("atlanta", "austin", "boston", "chicago", "houston", "miami", "phoenix", "portland")
TEST_CITY = "denver"


def _check(job):
    if job.num_test is not None and job.num_test and job.num_val:
        raise ValueError("write_dataset: Vo & Hays has train/test only; give the test "
                         "size as num_test (or num_val), not both")


def _city_streams(job, num_test):
    per_city = [job.num_train // len(TRAIN_CITIES)] * len(TRAIN_CITIES)
    for i in range(job.num_train % len(TRAIN_CITIES)):
        per_city[i] += 1
    jobs = {"train": list(zip(TRAIN_CITIES, per_city)), "test": [(TEST_CITY, num_test)]}
    streams = []
    for cities in jobs.values():
        for city, n in cities:
            city_idx = (TRAIN_CITIES + (TEST_CITY,)).index(city)
            style = WorldStyle.random(np.random.default_rng(seed_sequence(job.seed, 77, city_idx)))
            files = (("ground", f"{city}/streetview", ".jpg"), ("satellite", f"{city}/overhead", ".jpg"))
            streams.append((PairStream(job.out_dir, job.seed, LAYOUT.stream, 10 + city_idx, job.satellite_size[0],
                                       job.ground_size, job.config, files, job.jpeg_quality, view="crop",
                                       horizon_fraction=0.4, style=style), n))
    return jobs, streams


def _write(runner, job):
    jobs, streams = _city_streams(job, job.num_test if job.num_test is not None else job.num_val)
    plans = iter(plan_streams(runner, streams))
    counts, label = {}, 0
    for split, cities in jobs.items():
        street, over, pairs = [], [], []
        for city, _ in cities:
            for _, _, _, paths in next(plans).results():
                pid = f"{label:07d}"
                g_rel, s_rel = f"{city}/streetview/{pid}.jpg", f"{city}/overhead/{pid}.jpg"
                os.replace(paths[0], os.path.join(job.out_dir, g_rel))
                os.replace(paths[1], os.path.join(job.out_dir, s_rel))
                street.append(f"{g_rel} {label}")
                over.append(f"{s_rel} {label}")
                pairs.append(f"{g_rel} {s_rel}")
                label += 1
        stem = "train" if split == "train" else f"test_{TEST_CITY}"
        save_text(os.path.join(job.out_dir, f"{stem}.streetview.txt"), street)
        save_text(os.path.join(job.out_dir, f"{stem}.overhead.txt"), over)
        save_text(os.path.join(job.out_dir, f"{split}_pairs.txt"), pairs)
        counts[split] = len(street)
    return counts


def write_vohays(out_dir: str, num_train: int = 64, num_val: int = 16, **options) -> dict:
    """A synthetic Vo & Hays dataset (module docstring); options as
    :func:`cvmnet_tf.data.synthetic.write_dataset`."""
    return write_pair_dataset(LAYOUT, _write, out_dir, num_train, num_val, check=_check, **options)
