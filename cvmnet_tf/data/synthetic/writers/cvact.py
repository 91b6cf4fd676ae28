"""CVACT layout (OriCNN): ``ACT_data.mat`` (scipy.io.savemat, OriCNN struct layout:
``panoIds`` (N,) strings, ``utm`` (N, 2) float64 (easting, northing), ``trainSet.trainInd``,
``valSet.valInd``, ``valSetAll.valInd``: 1-based (n, 1) float64 column vectors),
``streetview/<id>_grdView.jpg`` (full panoramas: the content band -- horizon in the middle,
+-45 degrees -- is the central half of the rows, sky above, ground below, as OriCNN's
832-row images) and ``satview_polish/<id>_satView_polish.jpg``. ``valSetAll`` = the
``num_val`` val pairs followed by ``num_test`` further pairs."""
from __future__ import annotations

import io
import os

import numpy as np

from cvmnet_tf.data.synthetic.config import SPLIT_STREAMS, STREAMS, seed_sequence
from cvmnet_tf.data.synthetic.files import save_bytes
from cvmnet_tf.data.synthetic.runner import PairLayout, PairStream, plan_streams, write_pair_dataset

__all__ = ["LAYOUT", "write_cvact"]

LAYOUT = PairLayout("cvact", STREAMS["cvact"], native=((1200, 1200), (832, 1664)), small=((256, 256), (128, 256)))
_ID_CHARS = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"))


def _cvact_ids(n, seed):
    rng = np.random.default_rng(seed_sequence(seed, LAYOUT.stream, 99))
    ids, seen = [], set()
    while len(ids) < n:
        s = "".join(rng.choice(_ID_CHARS, 22))
        if s not in seen:
            seen.add(s)
            ids.append(s)
    return ids


def _write_mat(path, ids, utm, slots):
    import scipy.io

    def col(idx):
        return (np.asarray(idx, np.float64) + 1).reshape(-1, 1)   # 1-based (n, 1)

    mat = {"panoIds": np.array(ids, dtype="<U22") if ids else np.zeros((0,), "<U22"),
           "utm": utm,
           "trainSet": {"trainInd": col(slots["train"])},
           "valSet": {"valInd": col(slots["val"])},
           "valSetAll": {"valInd": col(np.concatenate([slots["val"], slots["test"]]))}}
    buf = io.BytesIO()
    scipy.io.savemat(buf, mat)
    data = bytearray(buf.getvalue())
    # the 116-byte text header holds a creation time: fixed text keeps the file a
    # function of the seed
    data[:116] = b"MATLAB 5.0 MAT-file, written by cvmnet_tf.data.synthetic".ljust(116)
    save_bytes(path, bytes(data))


def _write(runner, job):
    num_train, num_val, num_test = job.num_train, job.num_val, job.num_test or 0
    total = num_train + num_val + num_test
    ids = _cvact_ids(total, job.seed)
    utm = np.zeros((total, 2), np.float64)
    # pairs are stored in a shuffled order so that split indices are not contiguous
    order = np.random.default_rng(seed_sequence(job.seed, LAYOUT.stream, 98)).permutation(total)
    slots = {"train": order[:num_train], "val": order[num_train:num_train + num_val],
             "test": order[num_train + num_val:]}
    files = (("ground", "streetview", ".jpg"), ("satellite", "satview_polish", ".jpg"))
    todo = (("train", num_train), ("val", num_val), ("test", num_test))
    plans = plan_streams(runner, [(PairStream(job.out_dir, job.seed, LAYOUT.stream, SPLIT_STREAMS[split],
                                              job.satellite_size[0], job.ground_size, job.config.for_split(split), files,
                                              job.jpeg_quality, horizon_fraction=0.5), n) for split, n in todo])
    for (split, _), plan in zip(todo, plans):
        for slot, (e, n, _, paths) in zip(slots[split], plan.results()):
            pid = ids[slot]
            os.replace(paths[0], os.path.join(job.out_dir, "streetview", f"{pid}_grdView.jpg"))
            os.replace(paths[1], os.path.join(job.out_dir, "satview_polish", f"{pid}_satView_polish.jpg"))
            utm[slot] = (e, n)
    _write_mat(os.path.join(job.out_dir, "ACT_data.mat"), ids, utm, slots)
    return {"train": num_train, "val": num_val, "test": num_val + num_test}


def write_cvact(out_dir: str, num_train: int = 64, num_val: int = 16, **options) -> dict:
    """A synthetic CVACT dataset (module docstring); ``num_test`` extra pairs are appended
    to ACT_test; options as :func:`cvmnet_tf.data.synthetic.write_dataset`."""
    return write_pair_dataset(LAYOUT, _write, out_dir, num_train, num_val, **options)
