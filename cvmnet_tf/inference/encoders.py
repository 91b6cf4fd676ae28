"""Descriptors from raw images: one encoder type for SavedModels and checkpoints, and one
function that runs it over image files.

:class:`RawImageEncoder` takes uint8 RGB batches ``(batch, H, W, 3)`` of any size and
returns float32 ``(batch, dim)`` descriptors; the package's evaluation preprocessing is
applied inside (a SavedModel written by :mod:`cvmnet_tf.inference.serving` carries it in
its graph; for a checkpoint the same serving module is built in memory), so both give the
same descriptors. :func:`encode_image_files` reads image files and runs an encoder branch
over them in batches of equal-sized images.
"""

from __future__ import annotations

import logging
from typing import Optional, Sequence

import numpy as np

from cvmnet_tf.utils.text import first_items

__all__ = ["RawImageEncoder", "load_encoder", "read_rgb", "encode_image_files", "check_encoder_output",
           "panorama_crop_transform"]

log = logging.getLogger("cvmnet_tf.inference")


class RawImageEncoder:
    """Descriptors from RAW images: uint8 RGB (batch, H, W, 3) -> float32 (batch, dim).

    ``info``: model name, satellite_size / ground_size ([H, W] pixels), dataset,
    descriptor_dim (when known).
    """

    def __init__(self, satellite_fn, ground_fn, info: dict, keep_alive=None):
        self._satellite_fn = satellite_fn
        self._ground_fn = ground_fn
        self.info = info
        self._keep_alive = keep_alive  # the loaded SavedModel / serving module owning the variables

    def _run(self, fn, images, what):
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(f"{what} images must be uint8 (batch, H, W, 3); got {images.dtype} {images.shape}")
        import tensorflow as tf
        return check_encoder_output(fn(images=tf.constant(images))["descriptor"], f"{what} images", len(images))

    def satellite(self, images) -> np.ndarray:
        return self._run(self._satellite_fn, images, "satellite")

    def ground(self, images) -> np.ndarray:
        return self._run(self._ground_fn, images, "ground")


def load_encoder(path: str, dataset: Optional[str] = None, precision: Optional[str] = None) -> RawImageEncoder:
    """A :class:`RawImageEncoder` from a SavedModel folder, a checkpoint folder or a .keras file.

    ``dataset`` picks the ground preprocessing of a checkpoint (default: its training
    dataset, else "cvusa"); for a SavedModel it must match the one it was exported with.
    ``info`` holds the model's fingerprint (``model_fingerprint``, from the export info of
    a SavedModel) and its ground field of view (``fov``, degrees). ``precision``: compute a
    checkpoint's descriptors in that precision (:func:`cvmnet_tf.inference.precision.with_precision`;
    None: the model's own); a SavedModel computes in the precision it was exported with.
    """
    from cvmnet_tf.inference import checkpoints, serving

    if serving.is_saved_model(path):
        import tensorflow as tf
        if precision is not None:
            raise ValueError(f"--mixed_precision={precision!r}: the SavedModel {path!r} computes in the precision it "
                             "was exported with; pass the training checkpoint to choose one")
        info = serving.read_export_info(path)
        if dataset and info.get("dataset") and dataset != info["dataset"]:
            raise ValueError(f"--dataset={dataset!r}: the SavedModel {path!r} was exported with "
                             f"{info['dataset']!r} preprocessing")
        loaded = tf.saved_model.load(path)
        sigs = getattr(loaded, "signatures", {})
        if "satellite" not in sigs or "ground" not in sigs:
            raise ValueError(f"{path!r}: SavedModel has no 'satellite'/'ground' signatures "
                             "(not written by cvmnet_tf's export)")
        return RawImageEncoder(sigs["satellite"], sigs["ground"], info, keep_alive=loaded)
    from cvmnet_tf.inference.fingerprint import model_fingerprint

    from cvmnet_tf.inference.precision import model_precision, with_precision

    model, info = checkpoints.load_model(path)
    model = with_precision(model, precision)
    info["precision"] = model_precision(model)
    dataset = dataset or info.get("dataset") or "cvusa"
    module = serving.make_serving_module(model, info["satellite_size"], info["ground_size"], dataset)
    return RawImageEncoder(module.satellite, module.ground,
                           dict(info, dataset=dataset, model_fingerprint=model_fingerprint(model)), keep_alive=module)


def read_rgb(path: str):
    """uint8 RGB (H, W, 3) of an image file, or None when it cannot be read / decoded."""
    import tensorflow as tf
    from cvmnet_tf.data import preprocessing as pp
    try:
        image, ok = pp.decode_image_checked(tf.io.read_file(path))
        return image.numpy() if bool(ok) else None
    except Exception:  # noqa: BLE001 - reported by the caller with the path
        return None


def check_encoder_output(x, what: str, rows: int) -> np.ndarray:
    """An encoder's output as float32 (rows, dim); ValueError naming ``what`` for another
    number of rows or for NaN / inf values (the first bad row)."""
    from cvmnet_tf.evaluation.metrics import check_descriptors

    x = np.asarray(x, np.float32)
    if x.ndim != 2 or x.shape[0] != rows:
        raise ValueError(f"{what}: the model returned shape {x.shape}, expected ({rows}, dim)")
    return check_descriptors(x, f"{what}: the model's")


def encode_image_files(fn, paths: Sequence[str], batch_size: int, what: str, *, progress: bool = False,
                       skip_unreadable: bool = True, transform=None):
    """Run ``fn`` (uint8 batch -> (B, dim), e.g. ``encoder.ground``) over image files;
    consecutive images of equal shape are batched (at most ``batch_size``).

    Unreadable files are skipped and reported (``skip_unreadable=True``) or raise ValueError
    naming the first one (``skip_unreadable=False``). ``transform(image, index) -> image``
    (optional) changes each uint8 image before it is batched (e.g. a limited-FoV crop of a
    panorama, :func:`panorama_crop_transform`).

    Returns (descriptors float32 (M, dim), kept indices int64 (M,), skipped [(index, path)]).
    """
    import keras

    bar = keras.utils.Progbar(len(paths), unit_name=what) if progress else None
    out, kept, skipped, pending, pending_idx = [], [], [], [], []

    def flush():
        if pending:
            out.append(np.asarray(fn(np.stack(pending)), np.float32))
            kept.extend(pending_idx)
            pending.clear()
            pending_idx.clear()

    for i, path in enumerate(paths):
        image = read_rgb(path)
        if image is None:
            if not skip_unreadable:
                raise ValueError(f"{what} image {path!r} cannot be read")
            skipped.append((i, path))
        else:
            if transform is not None:
                image = np.ascontiguousarray(transform(image, i))
            if pending and (image.shape != pending[0].shape or len(pending) >= batch_size):
                flush()
            pending.append(image)
            pending_idx.append(i)
        if bar is not None:
            bar.update(i + 1)
    flush()
    if skipped:
        log.warning("%d unreadable %s image(s) skipped: %s", len(skipped), what,
                    first_items([p for _, p in skipped], 10, ", "))
    if not out:
        raise ValueError(f"no readable {what} image among {len(paths)} file(s)")
    return np.concatenate(out).astype(np.float32), np.asarray(kept, np.int64), skipped


def panorama_crop_transform(ground_crop, panorama_width: int, num_images: int):
    """``transform(image, index)`` for :func:`encode_image_files`: the evaluation crop of
    :class:`cvmnet_tf.data.fov.GroundCrop` applied to RAW panoramas, for an encoder that
    takes the cropped (limited-FoV) image (a SavedModel of a FoV model). The pipelines crop
    the panorama after resizing it to ``panorama_width`` columns; here the crop comes first,
    at the same heading: start column ``round(start * W_raw / panorama_width)`` and
    ``fov_width(W_raw, fov)`` columns of the raw image (the same pixels up to resampling;
    identical when ``W_raw`` is a multiple of ``panorama_width`` and the FoV crop widths
    scale exactly). None when the crop is inactive."""
    from cvmnet_tf.data.fov import fov_width

    if ground_crop is None or not ground_crop.active:
        return None
    starts = ground_crop.evaluation_starts(num_images, int(panorama_width))

    def transform(image, index):
        w_raw = image.shape[1]
        start = int(round(starts[index] * w_raw / panorama_width)) % w_raw
        cols = (start + np.arange(fov_width(w_raw, ground_crop.fov_deg))) % w_raw
        return image[:, cols]
    return transform