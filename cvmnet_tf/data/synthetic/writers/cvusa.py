"""CVUSA layout: ``bingmap/19/<id>.jpg`` (satellite), ``streetview/panos/<id>.jpg``
(panorama), ``splits/train-19zl.csv`` / ``splits/val-19zl.csv`` with lines
``bingmap/19/<id>.jpg,streetview/panos/<id>.jpg,streetview/annotations/<id>.png``
(ids: 7 digits, 1-based; annotation images are written only with
``write_annotations=True``, as 8-bit class-label PNGs)."""
from __future__ import annotations

import os

from cvmnet_tf.data.synthetic.config import SPLIT_STREAMS, STREAMS
from cvmnet_tf.data.synthetic.files import save_text
from cvmnet_tf.data.synthetic.runner import PairLayout, PairStream, plan_streams, write_pair_dataset

__all__ = ["LAYOUT", "write_cvusa"]

LAYOUT = PairLayout("cvusa", STREAMS["cvusa"], native=((750, 750), (224, 1232)), small=((256, 256), (64, 256)))


def _check(job):
    if job.num_test:
        raise ValueError("write_dataset: CVUSA has only train/val splits; num_test must be None or 0")


def _write(runner, job):
    files = (("satellite", "bingmap/19", ".jpg"), ("ground", "streetview/panos", ".jpg"))
    if job.write_annotations:
        files += (("ground_labels", "streetview/annotations", ".png"),)
    todo = (("train", job.num_train, "train-19zl.csv"), ("val", job.num_val, "val-19zl.csv"))
    plans = plan_streams(runner, [(PairStream(job.out_dir, job.seed, LAYOUT.stream, SPLIT_STREAMS[split],
                                              job.satellite_size[0], job.ground_size, job.config.for_split(split), files,
                                              job.jpeg_quality), n) for split, n, _ in todo])
    counts, next_id = {}, 1
    for (split, n, fname), plan in zip(todo, plans):
        lines = []
        for _, _, _, paths in plan.results():
            pid = f"{next_id:07d}"
            next_id += 1
            s_rel, g_rel = f"bingmap/19/{pid}.jpg", f"streetview/panos/{pid}.jpg"
            a_rel = f"streetview/annotations/{pid}.png"
            for src, rel in zip(paths, (s_rel, g_rel, a_rel)):
                os.replace(src, os.path.join(job.out_dir, rel))
            lines.append(f"{s_rel},{g_rel},{a_rel}")
        save_text(os.path.join(job.out_dir, "splits", fname), lines)
        counts[split] = len(lines)
    return counts


def write_cvusa(out_dir: str, num_train: int = 64, num_val: int = 16, **options) -> dict:
    """A synthetic CVUSA dataset (module docstring); options as
    :func:`cvmnet_tf.data.synthetic.write_dataset`."""
    return write_pair_dataset(LAYOUT, _write, out_dir, num_train, num_val, check=_check, **options)
