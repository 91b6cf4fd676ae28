"""Image preprocessing of the released CVM-Net code (src/CVM-Net/input_data.py), as TF ops.

Every function is graph-safe (usable in ``tf.data`` maps, ``tf.function`` and a SavedModel
signature); Python-level arguments (``size``, ``training``, ``dataset``) are static.

Network input (both branches): RGB uint8 -> BGR float32 minus the caffe means
(B 103.939, G 116.779, R 123.6), no scaling, shape (H, W, 3) or (B, H, W, 3).

Satellite, training (released rule for 750x750 tiles and a 512x512 target):
  s = randint(1, 748) inclusive; if s > 512, crop the centred s x s square
  (start = int((750 - s) / 2)); resize to the target with area interpolation; rotate
  counter-clockwise by randint(0, 4) * 90 degrees (0..4 inclusive, so "no rotation" has
  probability 2/5, as the code). For a tile of another size S (CVACT 1200, Vo & Hays 250,
  small synthetic tiles) the rule is scaled proportionally: the crop side is
  ``s * S // 750`` (threshold and range stay 512 / 748 out of 750, i.e. the same crop
  fractions 0.684..0.997), independent of the target size. At S = 750 this is the code's
  rule exactly.
Satellite, evaluation: area resize only.

Ground: one of :data:`GROUND_RULES`, named by the dataset's registry entry
(:data:`cvmnet_tf.data.DATASETS`; functions taking ``dataset`` accept a dataset name or a
rule name, anything unknown is "resize"):
  "panorama" (CVUSA): at the paper size (224, 1232) the panorama must be exactly 224 x 1232
    (else the pipeline skips the pair, as the code); it is not resized. At any other target
    size it is area-resized (our extension for small CPU runs).
  "central_rows" (CVACT): keep the central half of the rows (832 -> rows 208..623, OriCNN),
    area-resize.
  "resize_crop" (Vo & Hays): gt-crossview Caffe ImageData: bilinear resize to 230/224 of
    the target, then centre crop to the target (224 x 224 at the paper size).
  "resize" (University-1652 drone/street images, anything else): area resize, no crop.

Speed (CPU, measured in benchmarks/input_pipeline.py; every formulation below gives
bit-identical values to the straightforward one): :func:`to_network_input` reverses the
channels of a uint8 image before the cast (1 byte per value moved instead of 4) and
subtracts the means as a flat same-shape constant when (H, W) is static (TF's per-channel
broadcast is several times slower); the training satellite folds the channel reversal into
the rotation (see :func:`preprocess_satellite`). :func:`satellite_pixels` /
:func:`ground_pixels` are the geometric parts alone (RGB values 0..255),
``to_network_input(*_pixels(...)) == preprocess_*(...)``. The area resize stays
``tf.image.resize(method="area")``: separable gather / sparse-matmul formulations were
2-5x slower on CPU.

uint8 output (``make_pair_dataset(output_dtype="uint8")``, the training pipeline of a
model whose first layer preprocesses on the device, :class:`cvmnet_tf.layers.NetworkInput`):
:func:`satellite_uint8` / :func:`ground_uint8` are the geometric parts rounded to uint8
RGB (``to_uint8``: round half to even, saturate). Crop and rotation are exact on uint8 (the
rotation runs after the rounding, on 1 byte per value); an area resize is rounded, so each
channel value is within 0.5 of :func:`satellite_pixels` / :func:`ground_pixels`; a CVUSA
panorama at the paper size is passed through untouched. ``to_network_input(*_uint8(...))``
therefore equals ``preprocess_*(...)`` to within 0.5 per value (the released code's own
``cv2.resize`` on uint8 rounds the same way).

Deviations from the released code (numerically small): the area resize runs on the
uint8-valued image in float32 instead of producing rounded uint8 (differences <= 0.5 grey
levels); the rotation is an exact 90-degree rotation (tf.image.rot90) whereas
cv2.warpAffine about (256, 256) shifts the rotated 512 image by one pixel and fills the
uncovered row/column with black.
"""
from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf

CAFFE_BGR_MEAN = (103.939, 116.779, 123.6)  # B, G, R
REFERENCE_SATELLITE_SIZE = 750
CROP_THRESHOLD = 512
CROP_MAX = 748
NUM_ROTATION_DRAWS = 5  # randint(0, 4) inclusive: k in 0..4, k = 4 is a full turn
VOHAYS_RESIZE = 230  # Caffe new_width/new_height for street-view crops of 224
VOHAYS_CROP = 224
PAPER_PANORAMA_SIZE = (224, 1232)
GROUND_RULES = ("panorama", "central_rows", "resize_crop", "resize")


def ground_rule(dataset: str | None) -> str:
    """The ground preprocessing rule (:data:`GROUND_RULES`) of ``dataset``: a registry
    dataset name (its entry's rule), a rule name (itself) or anything else ("resize")."""
    if dataset in GROUND_RULES:
        return dataset
    from .registry import DATASETS
    spec = DATASETS.get(dataset)
    return spec.ground_rule if spec is not None else "resize"

_JPEG_SOI = b"\xff\xd8"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_EOI_SEARCH_BYTES = 64


def to_network_input(image: tf.Tensor) -> tf.Tensor:
    """RGB image (..., H, W, 3), any real dtype, pixel values 0..255 -> BGR float32 minus means.

    Works on one image (H, W, 3) or a batch (B, H, W, 3). Same values as
    ``tf.reverse(tf.cast(image, tf.float32), [-1]) - CAFFE_BGR_MEAN``, computed faster: an
    integer image is reversed before the cast (1 byte per value moved instead of 4), and
    with a static (H, W) the mean is subtracted as a flat same-shape constant.
    """
    image = tf.convert_to_tensor(image)
    if image.dtype.is_integer:
        image = tf.cast(tf.reverse(image, axis=[-1]), tf.float32)
    else:
        image = tf.reverse(tf.cast(image, tf.float32), axis=[-1])
    shape = image.shape
    if shape.rank is not None and shape.rank >= 3 and shape[-1] == 3 \
            and shape[-3] is not None and shape[-2] is not None:
        n = shape[-3] * shape[-2] * 3
        flat = tf.reshape(image, [-1, n]) - tf.constant(_mean_tile(n))
        return tf.ensure_shape(tf.reshape(flat, tf.shape(image)), shape)
    return image - tf.constant(CAFFE_BGR_MEAN, tf.float32)


@functools.lru_cache(maxsize=8)
def _mean_tile(n: int) -> np.ndarray:
    """float32 (n,) = CAFFE_BGR_MEAN repeated (n a multiple of 3)."""
    out = np.tile(np.asarray(CAFFE_BGR_MEAN, np.float32), n // 3)
    out.flags.writeable = False
    return out


def from_network_input(image: tf.Tensor) -> tf.Tensor:
    """Inverse of :func:`to_network_input`: BGR minus means -> RGB float32 0..255."""
    return tf.reverse(tf.cast(image, tf.float32) + tf.constant(CAFFE_BGR_MEAN, tf.float32),
                      axis=[-1])


def jpeg_markers_ok(contents: tf.Tensor) -> tf.Tensor:
    """bool scalar: the bytes start with the JPEG SOI marker (FF D8) and an EOI marker
    (FF D9) lies in the last 64 bytes (a truncated file has none: inside entropy-coded data
    FF is always followed by 00 or a restart marker)."""
    n = tf.strings.length(contents)
    start = tf.strings.substr(contents, 0, 2) == _JPEG_SOI
    tail = tf.io.decode_raw(tf.strings.substr(contents, tf.maximum(n - _EOI_SEARCH_BYTES, 0),
                                              _EOI_SEARCH_BYTES), tf.uint8)
    eoi = tf.reduce_any(tf.logical_and(tf.equal(tail[:-1], 0xFF), tf.equal(tail[1:], 0xD9)))
    return tf.logical_and(tf.logical_and(start, eoi), n >= 4)


def decode_image_checked(contents: tf.Tensor):
    """Decode JPEG (or PNG) bytes to RGB uint8 without raising on bad data it can detect.

    Returns ``(image, ok)``: image uint8 (H, W, 3) and a bool scalar. ``ok`` is False (and the
    image a 1x1 black placeholder that must not be used) when the bytes are neither a
    complete JPEG (SOI/EOI markers) nor a PNG. Corruption inside a JPEG with intact markers
    can still make the decoder raise; the pipelines drop such elements with
    ``ignore_errors`` and report them (see cvmnet_tf.data.pipeline.SkipReport).
    """
    is_jpeg = jpeg_markers_ok(contents)
    is_png = tf.strings.substr(contents, 0, 8) == _PNG_SIGNATURE

    def bad():
        return tf.zeros([1, 1, 3], tf.uint8)

    def decode_png():
        return tf.cond(is_png, lambda: tf.io.decode_png(contents, channels=3), bad)

    image = tf.cond(
        is_jpeg,
        lambda: tf.io.decode_jpeg(contents, channels=3, dct_method="INTEGER_ACCURATE"),
        decode_png)
    image = tf.ensure_shape(image, [None, None, 3])
    ok = tf.logical_or(is_jpeg, is_png)
    shape = tf.shape(image)
    ok = tf.logical_and(ok, tf.logical_and(shape[0] > 0, shape[1] > 0))
    return image, ok


def _size(size, what: str) -> tuple:
    size = tuple(int(v) for v in size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"{what} size must be (height, width) > 0, got {size!r}")
    return size


def satellite_augment_params(image_shape, seed=None):
    """Draw the released satellite augmentation for an image of ``image_shape`` (H, W, ...).

    Returns int32 scalars ``(offset_h, offset_w, crop_h, crop_w, k)``: the centred crop
    window (the whole image when s <= 512) and the number of counter-clockwise quarter turns
    k in 0..4 (k = 4 is a full turn). ``seed``: an int32/int64 tensor of shape (2,) for
    ``tf.random.stateless_uniform`` (reproducible); None uses the stateful global RNG.
    """
    if seed is None:
        s = tf.random.uniform([], 1, CROP_MAX + 1, dtype=tf.int32)
        k = tf.random.uniform([], 0, NUM_ROTATION_DRAWS, dtype=tf.int32)
    else:
        seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=2)
        s = tf.random.stateless_uniform([], seeds[0], 1, CROP_MAX + 1, dtype=tf.int32)
        k = tf.random.stateless_uniform([], seeds[1], 0, NUM_ROTATION_DRAWS, dtype=tf.int32)
    shape = tf.cast(image_shape, tf.int32)
    h, w = shape[0], shape[1]
    crop = s > CROP_THRESHOLD
    crop_h = tf.where(crop, tf.maximum(s * h // REFERENCE_SATELLITE_SIZE, 1), h)
    crop_w = tf.where(crop, tf.maximum(s * w // REFERENCE_SATELLITE_SIZE, 1), w)
    return (h - crop_h) // 2, (w - crop_w) // 2, crop_h, crop_w, k


def resize_area(image: tf.Tensor, size) -> tf.Tensor:
    """Area-interpolation resize (cv2.INTER_AREA for downscaling) -> float32 (h, w, 3)."""
    return tf.cast(tf.image.resize(image, size, method="area"), tf.float32)


def rot90(image: tf.Tensor, k) -> tf.Tensor:
    """Rotate a square (H, H, C) image counter-clockwise by ``k`` quarter turns (k mod 4),
    as ``np.rot90(image, k)``. A tf.switch_case over four transposes/reversals (cheaper than
    tf.image.rot90, which adds asserts and a tf.case)."""
    def r0():
        return image

    def r1():
        return tf.transpose(tf.reverse(image, [1]), [1, 0, 2])

    def r2():
        return tf.reverse(image, [0, 1])

    def r3():
        return tf.reverse(tf.transpose(image, [1, 0, 2]), [1])

    return tf.switch_case(tf.math.floormod(tf.cast(k, tf.int32), 4), [r0, r1, r2, r3])


def satellite_pixels(image_uint8_rgb: tf.Tensor, size=(512, 512), training: bool = False,
                     seed=None) -> tf.Tensor:
    """The geometric part of :func:`preprocess_satellite`: (H, W, 3) uint8 RGB -> float32 RGB
    pixel values 0..255, (size[0], size[1], 3) (crop + area resize + rotation in training,
    area resize otherwise). ``to_network_input(satellite_pixels(...))`` equals
    :func:`preprocess_satellite`."""
    size = _size(size, "satellite")
    if training:
        image, k = training_crop_resize(image_uint8_rgb, size, seed)
        image = rot90(image, k)
    else:
        image = resize_area(tf.convert_to_tensor(image_uint8_rgb), size)
    return tf.ensure_shape(image, [size[0], size[1], 3])


def training_crop_resize(image_uint8_rgb, size: tuple, seed):
    """The released training crop + area resize of a satellite tile to the square ``size``
    (checked). Returns (float32 (size[0], size[1], 3), k quarter turns still to apply)."""
    if size[0] != size[1]:
        raise ValueError(f"satellite training augmentation rotates by 90 degrees; the "
                         f"target size must be square, got {size}")
    image = tf.convert_to_tensor(image_uint8_rgb)
    oh, ow, ch, cw, k = satellite_augment_params(tf.shape(image), seed)
    image = tf.slice(image, tf.stack([oh, ow, 0]), tf.stack([ch, cw, -1]))
    return resize_area(image, size), k


def preprocess_satellite(image_uint8_rgb: tf.Tensor, size=(512, 512), training: bool = False,
                         seed=None) -> tf.Tensor:
    """Satellite tile (H, W, 3) uint8 RGB -> network input float32 (size[0], size[1], 3), BGR
    minus caffe means. ``training``: the released random crop + rotation (module docstring;
    the target must be square); ``seed``: (2,) int tensor for a reproducible draw.

    Equals ``to_network_input(satellite_pixels(...))`` exactly. In training the channel
    reversal is folded into the rotation: for a square image y and R = reversal of the
    flattened array (= rotation by 180 degrees + RGB -> BGR),
    ``BGR(rot90(y, k)) - mean = R(rot90(y, k + 2) - R(mean))`` (a contiguous reversal is
    cheaper than reversing 3-value channel groups).
    """
    if not training:
        return to_network_input(satellite_pixels(image_uint8_rgb, size, False))
    size = _size(size, "satellite")
    image, k = training_crop_resize(image_uint8_rgb, size, seed)
    image = rot90(image, k + 2)
    n = size[0] * size[1] * 3
    flat = tf.reshape(image, [n]) - tf.constant(_mean_tile(n)[::-1].copy())
    return tf.reshape(tf.reverse(flat, axis=[0]), [size[0], size[1], 3])


def to_uint8(image: tf.Tensor) -> tf.Tensor:
    """Pixel values 0..255 (any real dtype) -> uint8, rounded half to even and saturated;
    a uint8 image is returned as it is."""
    image = tf.convert_to_tensor(image)
    if image.dtype == tf.uint8:
        return image
    return tf.saturate_cast(tf.round(tf.cast(image, tf.float32)), tf.uint8)


def satellite_uint8(image_uint8_rgb: tf.Tensor, size=(512, 512), training: bool = False,
                    seed=None) -> tf.Tensor:
    """:func:`satellite_pixels` rounded to uint8 RGB (size[0], size[1], 3): the same crop and
    rotation draws for the same ``seed``; the rotation is applied to the rounded uint8
    image (exact), so every value is within 0.5 of :func:`satellite_pixels`."""
    size = _size(size, "satellite")
    if training:
        image, k = training_crop_resize(image_uint8_rgb, size, seed)
        image = rot90(to_uint8(image), k)
    else:
        image = to_uint8(resize_area(tf.convert_to_tensor(image_uint8_rgb), size))
    return tf.ensure_shape(image, [size[0], size[1], 3])


def ground_uint8(image_uint8_rgb: tf.Tensor, size=(224, 1232), dataset: str = "cvusa") -> tf.Tensor:
    """:func:`ground_pixels` rounded to uint8 RGB (size[0], size[1], 3) (a CVUSA panorama at
    the paper size is returned untouched)."""
    return to_uint8(ground_pixels(image_uint8_rgb, size, dataset))


def ground_ok(image_shape, size=(224, 1232), dataset: str = "cvusa") -> tf.Tensor:
    """bool scalar: can this ground image (shape (H, W, 3)) be used for ``dataset`` at ``size``?

    CVUSA ("panorama") at the paper size (224, 1232) needs exactly 224 x 1232 (the released
    code skips other pairs); CVACT ("central_rows") needs at least 2 rows; everything else
    any non-empty image.
    """
    size = _size(size, "ground")
    shape = tf.cast(image_shape, tf.int32)
    rule = ground_rule(dataset)
    if rule == "panorama" and size == PAPER_PANORAMA_SIZE:
        return tf.logical_and(tf.equal(shape[0], 224), tf.equal(shape[1], 1232))
    if rule == "central_rows":
        return tf.logical_and(shape[0] >= 2, shape[1] >= 1)
    return tf.logical_and(shape[0] >= 1, shape[1] >= 1)


def ground_pixels(image_uint8_rgb: tf.Tensor, size=(224, 1232),
                  dataset: str = "cvusa") -> tf.Tensor:
    """The geometric part of :func:`preprocess_ground`: (H, W, 3) uint8 RGB -> RGB pixel
    values 0..255, (size[0], size[1], 3): the uint8 image itself for CVUSA at the paper
    size (nothing to do), float32 otherwise. ``to_network_input(ground_pixels(...))`` equals
    :func:`preprocess_ground`."""
    size = _size(size, "ground")
    image = tf.convert_to_tensor(image_uint8_rgb)
    rule = ground_rule(dataset)
    if rule == "panorama" and size == PAPER_PANORAMA_SIZE:
        tf.debugging.assert_equal(
            tf.shape(image)[:2], tf.constant([224, 1232]),
            message="CVUSA ground panorama must be exactly 224 x 1232 (H x W)")
    elif rule == "central_rows":
        h = tf.shape(image)[0]
        image = image[h // 4: h // 4 + h // 2]
        image = resize_area(image, size)
    elif rule == "resize_crop":
        big = (int(round(size[0] * VOHAYS_RESIZE / VOHAYS_CROP)),
               int(round(size[1] * VOHAYS_RESIZE / VOHAYS_CROP)))
        image = tf.image.resize(tf.cast(image, tf.float32), big, method="bilinear")
        oh, ow = (big[0] - size[0]) // 2, (big[1] - size[1]) // 2
        image = image[oh: oh + size[0], ow: ow + size[1]]
    else:  # "resize": University-1652 drone/street views and anything else
        image = resize_area(image, size)
    return tf.ensure_shape(image, [size[0], size[1], 3])


def preprocess_ground(image_uint8_rgb: tf.Tensor, size=(224, 1232),
                      dataset: str = "cvusa") -> tf.Tensor:
    """Ground image (H, W, 3) uint8 RGB -> network input float32 (size[0], size[1], 3).

    ``dataset``: a dataset or rule name (module docstring). For CVUSA at the paper size a
    panorama that is not exactly 224 x 1232 raises InvalidArgumentError (the pipelines
    check :func:`ground_ok` first and skip the pair instead).
    """
    return to_network_input(ground_pixels(image_uint8_rgb, size, dataset))
