"""Descriptors of a dataset split, saved for offline evaluation (NumPy + OriCNN .mat).

Usage::

    python -m cvmnet_tf.extract --model runs/Model/cvm_net_i/12 --dataset cvusa \\
        --data_dir /data/CVUSA --split val --output out/cvusa_val [--distractor_dir DIR]

``--model`` is a training checkpoint folder, a ``.keras`` file or a SavedModel folder
written by :mod:`cvmnet_tf.export`. Files written (each atomically, and only once every
descriptor is computed and checked; a failure leaves none of them):

- ``<prefix>_satellite.npy``: float32 (N, dim), row i = satellite image of pair index[i];
- ``<prefix>_ground.npy``: float32 (N, dim), row i = ground image of pair index[i];
- ``<prefix>_index.npy``: int64 (N,), position of each row in the split (pairs with an
  unreadable image are skipped and reported, so N can be < len(split));
- ``<prefix>.mat``: OriCNN-compatible ``sat_global_descriptor`` (N, dim),
  ``grd_global_descriptor`` (N, dim), and ``utm`` (N, 2, metres) when the split has it;
- ``<prefix>_distractors.npy``: float32 (M, dim) with ``--distractor_dir`` (sorted file
  names, see :func:`cvmnet_tf.data.list_distractor_images`), database rows N.. for
  :func:`cvmnet_tf.evaluation.evaluate_retrieval`; ``<prefix>_distractors.txt`` their paths.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Dict, List, Optional, Sequence

import numpy as np

from cvmnet_tf.utils import atomic_io
from cvmnet_tf import export as export_lib

log = logging.getLogger("cvmnet_tf.extract")
DATASETS = ("cvusa", "cvact", "vohays")


class RawImageEncoder:
    """Descriptors from RAW images: uint8 RGB (batch, H, W, 3) -> float32 (batch, dim).

    Wraps a SavedModel from :mod:`cvmnet_tf.export` or a checkpoint (the same serving
    module is built in memory), so both apply the package's evaluation preprocessing.
    ``info``: model name, satellite_size / ground_size ([H, W] pixels), dataset,
    descriptor_dim (when known).
    """

    def __init__(self, satellite_fn, ground_fn, info: dict):
        self._satellite_fn = satellite_fn
        self._ground_fn = ground_fn
        self.info = info

    def _run(self, fn, images, what):
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(f"{what} images must be uint8 (batch, H, W, 3); got {images.dtype} {images.shape}")
        import tensorflow as tf
        return np.asarray(fn(images=tf.constant(images))["descriptor"], np.float32)

    def satellite(self, images) -> np.ndarray:
        return self._run(self._satellite_fn, images, "satellite")

    def ground(self, images) -> np.ndarray:
        return self._run(self._ground_fn, images, "ground")


def load_encoder(path: str, dataset: Optional[str] = None) -> RawImageEncoder:
    """A :class:`RawImageEncoder` from a SavedModel folder, a checkpoint folder or a .keras file.

    ``dataset`` picks the ground preprocessing of a checkpoint (default: its training
    dataset, else "cvusa"); for a SavedModel it must match the one it was exported with.
    """
    if export_lib.is_saved_model(path):
        import tensorflow as tf
        info_file = os.path.join(path, export_lib.EXPORT_INFO_FILE)
        info = {}
        if os.path.isfile(info_file):
            with open(info_file, encoding="utf-8") as f:
                info = json.load(f)
        if dataset and info.get("dataset") and dataset != info["dataset"]:
            raise ValueError(f"--model={path!r} was exported with {info['dataset']!r} ground "
                             f"preprocessing, not --dataset={dataset!r}; re-export it with --dataset={dataset}")
        loaded = tf.saved_model.load(path)
        sigs = getattr(loaded, "signatures", {})
        if "ground" not in sigs or "satellite" not in sigs:
            raise ValueError(f"--model={path!r}: SavedModel has no 'ground'/'satellite' signatures "
                             "(not written by cvmnet_tf.export)")
        enc = RawImageEncoder(sigs["satellite"], sigs["ground"], info)
        enc._loaded = loaded  # keep the variables alive
        return enc
    model, info = export_lib.load_model(path)
    dataset = dataset or info.get("dataset") or "cvusa"
    module = export_lib.make_serving_module(model, info["satellite_size"], info["ground_size"], dataset)
    info = dict(info, dataset=dataset)

    def sat(images):
        return module.satellite(images)

    def grd(images):
        return module.ground(images)

    enc = RawImageEncoder(sat, grd, info)
    enc._module = module
    return enc


def _read_rgb(path: str):
    """uint8 RGB (H, W, 3) or None when the file cannot be read/decoded."""
    import tensorflow as tf
    from cvmnet_tf.data import preprocessing as pp
    try:
        image, ok = pp.decode_image_checked(tf.io.read_file(path))
        return image.numpy() if bool(ok) else None
    except Exception:  # noqa: BLE001 - reported by the caller with the path
        return None


def encode_image_files(fn, paths: Sequence[str], batch_size: int, what: str, progress: bool = False):
    """Run ``fn`` (uint8 batch -> (B, dim)) over image files; consecutive images of equal
    shape are batched. Returns (descriptors float32 (M, dim), kept indices int64 (M,),
    skipped [(index, path)])."""
    import keras

    bar = keras.utils.Progbar(len(paths), unit_name=what) if progress else None
    out, kept, skipped, pending, pending_idx = [], [], [], [], []

    def flush():
        if pending:
            out.append(fn(np.stack(pending)))
            kept.extend(pending_idx)
            pending.clear()
            pending_idx.clear()

    for i, path in enumerate(paths):
        image = _read_rgb(path)
        if image is None:
            skipped.append((i, path))
        else:
            if pending and (image.shape != pending[0].shape or len(pending) >= batch_size):
                flush()
            pending.append(image)
            pending_idx.append(i)
        if bar is not None:
            bar.update(i + 1)
    flush()
    if skipped:
        log.warning("%d unreadable %s image(s) skipped: %s", len(skipped), what,
                    ", ".join(p for _, p in skipped[:10]))
    if not out:
        raise ValueError(f"no readable {what} image among {len(paths)} file(s)")
    return np.concatenate(out).astype(np.float32), np.asarray(kept, np.int64), skipped


def extract_descriptors(model: str, dataset: str, data_dir: str, split: str = "val", *,
                        batch_size: int = 16, distractor_dir: Optional[str] = None,
                        max_pairs: int = 0, progress: bool = True) -> Dict[str, object]:
    """Descriptors of every pair of ``split`` (and of optional distractor images).

    Args:
      model: checkpoint folder, .keras file or SavedModel folder.
      dataset: "cvusa" | "cvact" | "vohays" (loader and ground preprocessing).
      data_dir: the dataset's root folder; split: e.g. "val".
      batch_size: images per forward pass.
      distractor_dir: folder of extra satellite images (database rows N..).
      max_pairs: use only the first max_pairs pairs (0: all).

    Returns:
      dict with "satellite", "ground" float32 (N, dim), "index" int64 (N,), "utm"
      float64 (N, 2) or None, "distractors" float32 (M, dim) or None,
      "distractor_paths" list, "skipped" [(index, path)], "info" (model info).
    """
    from cvmnet_tf import data as splits_lib

    if dataset not in DATASETS:
        raise ValueError(f"--dataset={dataset!r}: choose one of {', '.join(DATASETS)}")
    if batch_size < 1:
        raise ValueError(f"--batch_size={batch_size}: must be >= 1")
    enc = load_encoder(model, dataset) if export_lib.is_saved_model(model) else None
    pair_split = splits_lib.load_split(dataset, data_dir, split)
    if max_pairs:
        pair_split = pair_split.subset(range(min(max_pairs, len(pair_split))))
    if len(pair_split) == 0:
        raise ValueError(f"split {split!r} of {data_dir!r} holds no pairs")
    distractor_paths = splits_lib.list_distractor_images(distractor_dir) if distractor_dir else []
    distractors = None
    skipped: List = []

    if enc is not None:
        sat, sat_idx, s_skip = encode_image_files(enc.satellite, pair_split.satellite_paths, batch_size,
                                                  "satellite", progress)
        grd, grd_idx, g_skip = encode_image_files(enc.ground, pair_split.ground_paths, batch_size,
                                                  "ground", progress)
        index = np.intersect1d(sat_idx, grd_idx)
        sat = sat[np.searchsorted(sat_idx, index)]
        grd = grd[np.searchsorted(grd_idx, index)]
        skipped = s_skip + g_skip
        if distractor_paths:
            distractors, _, d_skip = encode_image_files(enc.satellite, distractor_paths, batch_size,
                                                        "distractor", progress)
            skipped += d_skip
        info = enc.info
    else:
        from cvmnet_tf import models
        from cvmnet_tf.inference import descriptors
        from cvmnet_tf.data import pipeline
        from cvmnet_tf.data.splits import ImageSizes

        keras_model, info = export_lib.load_model(model)
        sizes = ImageSizes(satellite=tuple(info["satellite_size"]), ground=tuple(info["ground_size"]))
        ds = pipeline.make_pair_dataset(pair_split, sizes, training=False, batch_size=batch_size)
        total = -(-len(pair_split) // batch_size)
        sat, grd, index = descriptors.pair_descriptors(keras_model, ds, total_batches=total, progress=progress)
        missing = sorted(set(range(len(pair_split))) - set(index.tolist()))
        skipped = [(i, f"{pair_split.satellite_paths[i]} / {pair_split.ground_paths[i]}") for i in missing]
        if distractor_paths:
            encoder = models.satellite_encoder(keras_model)
            dds = pipeline.make_image_dataset(distractor_paths, sizes.satellite, "satellite", batch_size,
                                              dataset=dataset)
            chunks = [np.asarray(encoder(b["image"], training=False), np.float32) for b in dds]
            if not chunks:
                raise ValueError(f"--distractor_dir={distractor_dir!r}: no readable image")
            distractors = np.concatenate(chunks)
            if len(distractors) != len(distractor_paths):
                skipped.append((-1, f"{len(distractor_paths) - len(distractors)} distractor image(s)"))
    if skipped:
        log.warning("%d item(s) skipped (unreadable or wrong size): %s", len(skipped),
                    "; ".join(str(p) for _, p in skipped[:10]))
    utm = None if pair_split.utm is None else np.asarray(pair_split.utm, np.float64)[index]
    return {"satellite": sat, "ground": grd, "index": np.asarray(index, np.int64), "utm": utm,
            "distractors": distractors, "distractor_paths": distractor_paths, "skipped": skipped,
            "info": info}


def check_result(result: Dict[str, object]) -> None:
    """Raise ValueError when the descriptors are inconsistent or not finite."""
    from cvmnet_tf.evaluation.metrics import check_descriptors
    sat = check_descriptors(result["satellite"], "satellite descriptors")
    grd = check_descriptors(result["ground"], "ground descriptors")
    if sat.shape != grd.shape:
        raise ValueError(f"satellite descriptors {sat.shape} and ground descriptors {grd.shape} differ in shape")
    index = np.asarray(result["index"])
    if index.shape != (sat.shape[0],):
        raise ValueError(f"index has shape {index.shape}, expected ({sat.shape[0]},)")
    if result.get("utm") is not None and np.asarray(result["utm"]).shape != (sat.shape[0], 2):
        raise ValueError(f"utm has shape {np.asarray(result['utm']).shape}, expected ({sat.shape[0]}, 2)")
    if result.get("distractors") is not None:
        d = check_descriptors(result["distractors"], "distractor descriptors")
        if d.shape[1] != sat.shape[1]:
            raise ValueError(f"distractor descriptors have dim {d.shape[1]}, the pairs {sat.shape[1]}")


def output_paths(prefix: str, with_distractors: bool) -> Dict[str, str]:
    paths = {"satellite": f"{prefix}_satellite.npy", "ground": f"{prefix}_ground.npy",
             "index": f"{prefix}_index.npy", "mat": f"{prefix}.mat"}
    if with_distractors:
        paths["distractors"] = f"{prefix}_distractors.npy"
        paths["distractor_paths"] = f"{prefix}_distractors.txt"
    return paths


def write_descriptors(prefix: str, result: Dict[str, object]) -> Dict[str, str]:
    """Write the files of the module docstring; all-or-nothing (temporary names first,
    renamed once every file is written). Returns {kind: path}."""
    import scipy.io

    check_result(result)
    with_d = result.get("distractors") is not None
    paths = output_paths(prefix, with_d)
    with atomic_io.atomic_paths(paths) as tmps:
        for key in ("satellite", "ground", "distractors"):
            if key in paths:
                with open(tmps[key], "wb") as f:
                    np.save(f, np.ascontiguousarray(result[key], np.float32))
        with open(tmps["index"], "wb") as f:
            np.save(f, np.asarray(result["index"], np.int64))
        mat = {"sat_global_descriptor": np.asarray(result["satellite"], np.float32),
               "grd_global_descriptor": np.asarray(result["ground"], np.float32)}
        if result.get("utm") is not None:
            mat["utm"] = np.asarray(result["utm"], np.float64)
        with open(tmps["mat"], "wb") as f:
            scipy.io.savemat(f, mat)
        if with_d:
            with open(tmps["distractor_paths"], "w", encoding="utf-8") as f:
                f.write("".join(p + "\n" for p in result["distractor_paths"]))
    return paths


def main(argv=None):
    from absl import app, flags

    flags.DEFINE_string("model", None, "Checkpoint folder, .keras file or SavedModel folder.")
    flags.DEFINE_enum("dataset", None, list(DATASETS), "Dataset layout of --data_dir.")
    flags.DEFINE_string("data_dir", None, "Dataset root folder.")
    flags.DEFINE_string("split", "val", "Split name (cvusa: train|val; cvact: train|val|test; vohays: train|test).")
    flags.DEFINE_string("output", None, "Output prefix: <prefix>_satellite.npy, _ground.npy, _index.npy, .mat.")
    flags.DEFINE_string("distractor_dir", None, "Folder of extra satellite images -> <prefix>_distractors.npy.")
    flags.DEFINE_integer("batch_size", 16, "Images per forward pass.")
    flags.DEFINE_integer("max_pairs", 0, "Use only the first N pairs (0: all).")
    flags.mark_flags_as_required(["model", "dataset", "data_dir", "output"])

    def run(_):
        f = flags.FLAGS
        try:
            result = extract_descriptors(f.model, f.dataset, f.data_dir, f.split, batch_size=f.batch_size,
                                         distractor_dir=f.distractor_dir, max_pairs=f.max_pairs)
            paths = write_descriptors(f.output, result)
        except (ValueError, FileNotFoundError) as exc:
            raise app.UsageError(str(exc)) from None
        n, dim = result["satellite"].shape
        print(f"{n} pairs, {dim}-d descriptors ({len(result['skipped'])} skipped):")
        for p in paths.values():
            print("  " + p)

    app.run(run, argv=argv)


if __name__ == "__main__":
    main()
