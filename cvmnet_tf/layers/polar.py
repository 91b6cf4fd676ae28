"""SAFA's polar transform of an aerial image (Shi, Liu, Yu, Li, NeurIPS 2019), as a Keras layer.

The aerial image (S x S, north up, camera at the centre) is resampled onto the panorama's
grid: output rows are distances from the centre (top row = far, bottom row = the centre),
columns are azimuths. For an output of H x W pixels, output pixel (i, j) samples the input
at (the equations of SAFA's ``script/data_preparation.py``, paper Eq. 1)::

    row(i, j) = S/2 + (S/2) * (H - 1 - i) / H * cos(2 pi j / W)
    col(i, j) = S/2 - (S/2) * (H - 1 - i) / H * sin(2 pi j / W)

in pixel-index coordinates (pixel (r, c) of the input is the sample at row r, column c),
with bilinear interpolation between the four neighbours (floor(row), floor(col)) ..
(floor(row) + 1, floor(col) + 1); a neighbour outside the image contributes ``fill_value``
(SAFA: 0, black). Column j = 0 looks south, W/4 west, W/2 north, 3W/4 east (azimuth
180 deg + 360 deg * j / W, clockwise from north), matching a north-centred panorama such as
CVUSA's (and the synthetic world's: see ``cvmnet_tf.data.synthetic.render.view_angles``,
whose columns sit half a column further, at (j + 0.5) / W).

Why a layer (and not a tf.data preprocessing op): the transform is part of the satellite
branch's function, so training, evaluation, ``ground_encoder`` / ``satellite_encoder``, the
exported SavedModel and the localization tool all run the same sampling without a second
code path to keep in sync; it is keras.ops only (runs under JAX too); the sampling table is
recomputed from the layer's config (nothing extra stored in a checkpoint); and on a CPU it
costs one gather of 4 * H * W pixels per image, negligible next to the VGG. The satellite
augmentation (crop, rotation) happens before it, on the square tile, as SAFA's images were
transformed from the (un-augmented) tiles.

Known difference from SAFA's released polar images: its script wrote them with
``scipy.misc.imsave``, which rescales a float image's range to 0..255 per image (its README
warns that other resampling / saving functions give other results); this layer does not
rescale. The network input here is the caffe-mean-subtracted BGR image, so a black fill is
``fill_value = -mean`` (what :func:`cvmnet_tf.models` passes); bilinear interpolation is
affine, so the result equals transforming the raw image and subtracting the mean afterwards.
"""
import math

import numpy as np

import keras
from keras import ops

__all__ = ["PolarTransform", "polar_sampling"]


def polar_sampling(input_size: int, output_size):
    """SAFA's bilinear sampling table for an ``input_size`` square image -> (H, W) output.

    Returns ``(index int32 (H*W, 4), weight float64 (H*W, 4), inside bool (H*W, 4))``: flat
    input indices (r * S + c, 0 where outside) of the four neighbours (r0,c0), (r1,c0),
    (r0,c1), (r1,c1) of every output pixel (row-major), their bilinear weights, and whether
    each neighbour lies inside the image.
    """
    s = int(input_size)
    h, w = (int(v) for v in output_size)
    if s < 1 or h < 1 or w < 1:
        raise ValueError(f"polar_sampling: sizes must be positive, got input {input_size}, output {output_size}")
    i = np.arange(h, dtype=np.float64)[:, None]
    j = np.arange(w, dtype=np.float64)[None, :]
    radius = s / 2.0 / h * (h - 1 - i)
    row = (s / 2.0 + radius * np.cos(2 * math.pi * j / w)).ravel()
    col = (s / 2.0 - radius * np.sin(2 * math.pi * j / w)).ravel()
    r0 = np.floor(row).astype(np.int64)
    c0 = np.floor(col).astype(np.int64)
    r1, c1 = r0 + 1, c0 + 1
    rows = np.stack([r0, r1, r0, r1], 1)
    cols = np.stack([c0, c0, c1, c1], 1)
    wr = np.stack([r1 - row, row - r0, r1 - row, row - r0], 1)
    wc = np.stack([c1 - col, c1 - col, col - c0, col - c0], 1)
    inside = (rows >= 0) & (rows < s) & (cols >= 0) & (cols < s)
    index = np.where(inside, rows * s + cols, 0).astype(np.int32)
    return index, wr * wc, inside


@keras.saving.register_keras_serializable(package="cvmnet_tf")
class PolarTransform(keras.layers.Layer):
    """SAFA polar transform: ``(batch, S, S, C)`` aerial image -> ``(batch, H, W, C)``.

    Args:
        output_size: (H, W) of the polar image (SAFA: the panorama's size, 112 x 616).
        fill_value: value of samples outside the input (float, or one per channel);
            SAFA uses 0 on raw pixel values.
        **kwargs: keras Layer arguments.

    The input must be square with a static size (the sampling table is built for it).
    Output dtype: the layer's compute dtype. No weights.
    """

    def __init__(self, output_size, fill_value=0.0, **kwargs):
        super().__init__(**kwargs)
        size = tuple(int(v) for v in output_size)
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"PolarTransform: output_size must be (H, W) > 0, got {output_size!r}")
        self.output_size = size
        self.fill_value = (float(fill_value) if np.ndim(fill_value) == 0
                           else tuple(float(v) for v in fill_value))

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[1] is None or input_shape[1] != input_shape[2]:
            raise ValueError(f"PolarTransform: input must be (batch, S, S, C) with a static square S, "
                             f"got {input_shape}")
        s, c = int(input_shape[1]), int(input_shape[3])
        if np.ndim(self.fill_value) and len(self.fill_value) != c:
            raise ValueError(f"PolarTransform: fill_value has {len(self.fill_value)} values for {c} channels")
        index, weight, inside = polar_sampling(s, self.output_size)
        self._size_in, self._channels = s, c
        self._index = index.reshape(-1)
        self._weight = np.where(inside, weight, 0.0).astype(np.float32)      # (HW, 4)
        fill = np.broadcast_to(np.asarray(self.fill_value, np.float64), (c,))
        self._fill = ((weight * ~inside).sum(1)[:, None] * fill[None, :]).astype(np.float32)  # (HW, C)

    def call(self, images):
        h, w = self.output_size
        s, c = self._size_in, self._channels
        flat = ops.reshape(images, (-1, s * s, c))
        taken = ops.take(flat, ops.convert_to_tensor(self._index), axis=1)           # (B, HW*4, C)
        taken = ops.reshape(taken, (-1, h * w, 4, c))
        weight = ops.cast(ops.convert_to_tensor(self._weight), taken.dtype)[None, :, :, None]
        out = ops.sum(taken * weight, axis=2) + ops.cast(ops.convert_to_tensor(self._fill), taken.dtype)[None]
        return ops.reshape(out, (-1, h, w, c))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_size[0], self.output_size[1], input_shape[3])

    def get_config(self):
        config = super().get_config()
        config.update(output_size=list(self.output_size),
                      fill_value=list(self.fill_value) if isinstance(self.fill_value, tuple) else self.fill_value)
        return config
