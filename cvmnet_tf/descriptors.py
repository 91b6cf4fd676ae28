"""Run a two-branch model over a pair dataset and collect its descriptors (TensorFlow).

Used by the per-epoch validation of the training loop and by descriptor extraction.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import tensorflow as tf


def pair_descriptors(model, dataset: tf.data.Dataset, *, total_batches: Optional[int] = None,
                     progress: bool = False, jit_compile: bool = False):
    """Descriptors of every pair in ``dataset``.

    Args:
      model: a two-branch ``keras.Model`` with dict inputs/outputs ``satellite`` and
        ``ground`` (see :mod:`cvmnet_tf.models`), run in inference mode.
      dataset: batches of dicts ``{"satellite": (B, Hs, Ws, 3), "ground": (B, Hg, Wg, 3),
        "index": (B,)}`` as made by :func:`cvmnet_tf.data.make_pair_dataset`.
      total_batches: for the progress bar only.

    Returns:
      ``(satellite, ground, index)``: float32 arrays (N, dim), (N, dim) and int64 (N,),
      in dataset order. Pairs the pipeline skipped (unreadable images) are absent, so
      ``index`` says which split rows the descriptors belong to.
    """

    @tf.function(reduce_retracing=True, jit_compile=jit_compile)
    def forward(satellite, ground):
        out = model({"satellite": satellite, "ground": ground}, training=False)
        return tf.cast(out["satellite"], tf.float32), tf.cast(out["ground"], tf.float32)

    return _collect(dataset, lambda b: forward(b["satellite"], b["ground"]), total_batches, progress,
                    "the dataset yielded no pairs: every image was skipped or the split is empty")


def image_descriptors(encoder, dataset: tf.data.Dataset, *, total_batches: Optional[int] = None,
                      progress: bool = False, jit_compile: bool = False):
    """Descriptors of every image in a one-branch ``dataset``.

    Args:
      encoder: a one-branch ``keras.Model`` ``(B, H, W, 3) -> (B, dim)``, e.g.
        :func:`cvmnet_tf.models.ground_encoder` / :func:`~cvmnet_tf.models.satellite_encoder`
        of a trained model, run in inference mode.
      dataset: batches ``{"image": (B, H, W, 3), "index": (B,)}`` as made by
        :func:`cvmnet_tf.data.make_image_dataset`.

    Returns:
      ``(descriptors, index)``: float32 (N, dim) and int64 (N,) in dataset order; images the
      pipeline skipped are absent, so ``index`` says which input rows they belong to.
    """

    @tf.function(reduce_retracing=True, jit_compile=jit_compile)
    def forward(images):
        return (tf.cast(encoder(images, training=False), tf.float32),)

    return _collect(dataset, lambda b: forward(b["image"]), total_batches, progress,
                    "the dataset yielded no images: every image was skipped or the list is empty")


def _collect(dataset, forward, total_batches, progress, empty_message):
    """Run ``forward(batch) -> tuple of (B, dim) tensors`` over ``dataset``; returns each output
    concatenated as float32 (N, dim), then the int64 (N,) "index" of the rows."""
    outputs, indices = [], []
    bar = None
    if progress:
        import keras
        bar = keras.utils.Progbar(total_batches, unit_name="batch")
    for i, batch in enumerate(dataset):
        outputs.append([t.numpy() for t in forward(batch)])
        indices.append(batch["index"].numpy())
        if bar is not None:
            bar.update(i + 1)
    if not outputs:
        raise ValueError(empty_message)
    return tuple(np.concatenate(col).astype(np.float32) for col in zip(*outputs)) + (
        np.concatenate(indices).astype(np.int64),)
