"""Limited field of view and unknown orientation: horizontal crops of a panorama.

DSM (Shi, Yu, Campbell, Li: "Where am I looking at?", CVPR 2020; github
shiyujiao/cross_view_localization_DSM, ``script/polar_input_data_orien_FOV_3.py`` and
``OriNet_CVACT/input_data_act_polar_3.py``) builds a limited-FoV query from a panorama
resized to 512 x 128 by

    grd_width = int(FOV / 360 * 512)
    random_shift = int(np.random.rand() * 512 * grd_noise / 360)
    img_dup = img[:, ((j - random_shift) % 512)[:grd_width], :]     # j = arange(512)

i.e. ``grd_width`` consecutive columns starting at column ``(512 - random_shift) % 512``,
wrapping around (``grd_noise = 360``: unknown orientation; 0: known, the crop starts at
column 0). TransGeo's ``--fov`` (github Jeff-Zilence/TransGeo2022, ``dataset/CVUSA.py``
``LimitedFoV``: ``angle = random.randint(0, 359)``, roll right by ``int(angle/360*W)``,
keep the first ``int(fov/360*W)`` columns) is the same crop with a whole-degree shift.

Test protocol. DSM fixes the test set by seeding once, ``np.random.seed(2019)``, before
scanning the test list in order (``test_cvusa_fov.py``, ``test_cvact_fov.py``; its README:
"to make sure the constructed test set is the same one whenever they are used"), one
``np.random.rand()`` per test image. So the shift of test image ``i`` is a pure function of
``(seed, i)``: the i-th draw of NumPy's legacy MT19937 seeded with ``seed``. That is
:func:`test_start_columns` (``seed=2019`` reproduces DSM's crops for its CVUSA/CVACT test
order at width 512). TransGeo draws a new random crop at every evaluation (not fixed).

Orientation. Column ``c`` of a north-aligned panorama of width W looks at azimuth
``360 * ((c + 0.5) / W - north_column_fraction)`` degrees clockwise from north. For CVUSA
(and CVACT as DSM uses it) north is the centre column, ``north_column_fraction = 0.5``:
DSM's ground-truth orientation of a crop is ``((512 - shift) / 512 * 360 + FOV / 2) % 360 -
180`` with "zero degree [...] the north direction, 0-180 degree [...] clock-wise"
(``generate_test_data_cvusa.py``), which is the azimuth of the crop's centre under that
rule; OriCNN's maintainer confirms CVUSA panoramas are north-aligned (OriCNN issue #1).
The synthetic world renders with the same convention (``render.view_angles``, default
``north_column_fraction=0.5``). A crop's *heading* here is the azimuth of its centre,
``heading = 360 * ((start + w / 2) / W - north_column_fraction)`` wrapped to [-180, 180)
(DSM's value when ``w = FOV / 360 * W`` exactly).

Everything graph-side is TensorFlow (usable in ``tf.data`` maps; imported when a crop is
made, so :func:`fov_width` and the protocol helpers load without it); the seeds and protocol
helpers are NumPy. :class:`GroundCrop` bundles one configuration (training flags ``--fov``,
``--random_orientation``, ``--fov_test_seed``) for the pipelines. It acts on the ground
branch only: a satellite-side transform (e.g. a polar resampling of the aerial image)
composes with it unchanged.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

__all__ = [
    "DSM_TEST_SEED",
    "GroundCrop",
    "PUBLISHED_FOVS",
    "crop_fov",
    "crop_fov_at_heading",
    "crop_heading",
    "dsm_orientation_label",
    "fov_width",
    "heading_to_start_column",
    "random_fov_crop",
    "random_start_column",
    "test_start_columns",
]

#: DSM's fixed test-set seed (``np.random.seed(2019)`` in test_cvusa_fov.py / test_cvact_fov.py).
DSM_TEST_SEED = 2019
#: Fields of view of the DSM / TransGeo tables, degrees.
PUBLISHED_FOVS = (360, 180, 90, 70)


def fov_width(width: int, fov_deg: float) -> int:
    """Columns of a ``fov_deg`` crop of a ``width``-column panorama: ``int(fov / 360 * W)``
    as DSM and TransGeo (truncation). Raises ValueError for fov outside (0, 360] or a crop
    narrower than one column."""
    width = int(width)
    fov = float(fov_deg)
    if not (0 < fov <= 360) or not math.isfinite(fov):
        raise ValueError(f"fov_deg={fov_deg!r}: the field of view must be in (0, 360] degrees")
    if width < 1:
        raise ValueError(f"panorama width {width} must be >= 1 column")
    w = int(fov / 360.0 * width)
    if w < 1:
        raise ValueError(f"fov_deg={fov_deg!r} of a {width}-column panorama is less than one column")
    return w


def _wrap180(deg):
    return (np.asarray(deg, np.float64) + 180.0) % 360.0 - 180.0


def crop_heading(start_column, width: int, fov_deg: float, north_column_fraction: float = 0.5):
    """Heading (degrees clockwise from north, [-180, 180)) of the centre of the crop that
    starts at ``start_column`` (int or array)."""
    w = fov_width(width, fov_deg)
    return _wrap180(360.0 * ((np.asarray(start_column, np.float64) + w / 2.0) / width - north_column_fraction))


def heading_to_start_column(heading_deg, width: int, fov_deg: float, north_column_fraction: float = 0.5):
    """First column (int64, in [0, W)) of the crop whose centre looks at ``heading_deg``
    (nearest column; inverse of :func:`crop_heading` up to that rounding)."""
    w = fov_width(width, fov_deg)
    s = np.floor(width * (np.asarray(heading_deg, np.float64) / 360.0 + north_column_fraction) - w / 2.0 + 0.5)
    return (s.astype(np.int64) % width)


def crop_fov(panorama, fov_deg: float, start_column):
    """Horizontal crop of ``fov_deg`` degrees starting at ``start_column``, wrapping around.

    Args:
      panorama: (H, W, C) or (B, H, W, C) tensor (any dtype).
      fov_deg: field of view, 0 < fov <= 360; the crop has ``fov_width(W, fov_deg)`` columns.
      start_column: int scalar (or (B,) for a batch): column ``start`` of the panorama
        becomes column 0 of the crop (DSM: ``start = (W - random_shift) % W``).

    Returns:
      (H, w, C) or (B, H, w, C), columns ``(start + j) % W`` for j = 0..w-1.
    """
    import tensorflow as tf

    x = tf.convert_to_tensor(panorama)
    if x.shape.rank not in (3, 4):
        raise ValueError(f"crop_fov: panorama must be (H, W, C) or (B, H, W, C); got shape {x.shape}")
    axis = x.shape.rank - 2
    width = x.shape[axis]
    if width is None:
        raise ValueError("crop_fov: the panorama width must be known statically")
    w = fov_width(width, fov_deg)
    start = tf.cast(start_column, tf.int32)
    cols = tf.math.floormod(start[..., None] + tf.range(w, dtype=tf.int32), width)
    if x.shape.rank == 3:
        if start.shape.rank != 0:
            raise ValueError("crop_fov: one panorama takes a scalar start_column")
        return tf.gather(x, cols, axis=1)
    if start.shape.rank != 1:
        raise ValueError("crop_fov: a batch takes start_column of shape (B,)")
    return tf.gather(x, cols, axis=2, batch_dims=1)


def crop_fov_at_heading(panorama, fov_deg: float, heading_deg, north_column_fraction: float = 0.5):
    """:func:`crop_fov` of the crop centred (nearest column) on ``heading_deg`` (degrees
    clockwise from north; numbers, not tensors)."""
    import tensorflow as tf

    x = tf.convert_to_tensor(panorama)
    width = x.shape[x.shape.rank - 2]
    return crop_fov(x, fov_deg, heading_to_start_column(heading_deg, width, fov_deg, north_column_fraction))


def random_start_column(width: int, seed, max_rotation_deg: float = 360.0):
    """Training: a random start column as DSM draws it, ``(W - int(u * W * noise / 360)) % W``
    with ``u ~ U[0, 1)`` from ``tf.random.stateless_uniform(seed=seed)`` (``seed``: int32/64
    shape (2,), e.g. ``tf.random.experimental.stateless_fold_in`` of (run seed, epoch) and
    the pair index: the same seed gives the same crop). ``max_rotation_deg`` = DSM's
    ``grd_noise`` (360: unknown orientation, 0: the crop always starts at column 0)."""
    import tensorflow as tf

    if not (0 <= float(max_rotation_deg) <= 360):
        raise ValueError(f"max_rotation_deg={max_rotation_deg!r} must be in [0, 360]")
    u = tf.random.stateless_uniform([], seed=seed, dtype=tf.float64)
    shift = tf.cast(tf.floor(u * (width * float(max_rotation_deg) / 360.0)), tf.int32)
    return tf.math.floormod(width - shift, width)


def random_fov_crop(panorama, fov_deg: float, seed, max_rotation_deg: float = 360.0):
    """Training crop of one (H, W, C) panorama: returns ``(crop (H, w, C), start int32)``
    (see :func:`random_start_column`)."""
    import tensorflow as tf

    x = tf.convert_to_tensor(panorama)
    if x.shape.rank != 3:
        raise ValueError(f"random_fov_crop: panorama must be (H, W, C); got shape {x.shape}")
    start = random_start_column(int(x.shape[1]), seed, max_rotation_deg)
    return crop_fov(x, fov_deg, start), start


def test_start_columns(indices, width: int, seed: int = DSM_TEST_SEED, max_rotation_deg: float = 360.0) -> np.ndarray:
    """Evaluation: the fixed start column of each test image, int64 (len(indices),).

    DSM's protocol: test image ``i`` (position in the test list) gets the i-th draw ``u_i``
    of ``np.random.RandomState(seed).rand()``, ``shift = int(u_i * W * noise / 360)``,
    ``start = (W - shift) % W``. A pure function of (seed, i): the same numbers in every
    run, for any batch size or subset of indices. ``seed=2019``, ``width=512``,
    ``max_rotation_deg=360`` reproduce DSM's CVUSA/CVACT test crops.
    """
    idx = np.asarray(indices, np.int64).reshape(-1)
    if idx.size and idx.min() < 0:
        raise ValueError("test_start_columns: indices must be >= 0")
    if not (0 <= float(max_rotation_deg) <= 360):
        raise ValueError(f"max_rotation_deg={max_rotation_deg!r} must be in [0, 360]")
    if idx.size == 0:
        return np.zeros(0, np.int64)
    u = np.random.RandomState(int(seed)).random_sample(int(idx.max()) + 1)[idx]
    shift = (u * width * float(max_rotation_deg) / 360.0).astype(np.int64)
    return (width - shift) % width


test_start_columns.__test__ = False  # not a pytest test despite the name


def dsm_orientation_label(start_column, width: int, fov_deg: float):
    """DSM's ground-truth orientation of a test crop (``generate_test_data_cvusa.py``):
    ``((W - shift) / W * 360 + FOV / 2) % 360 - 180`` degrees with ``shift = (W - start) % W``."""
    shift = (width - np.asarray(start_column, np.int64)) % width
    return ((width - shift) / width * 360.0 + float(fov_deg) / 2.0) % 360.0 - 180.0


@dataclasses.dataclass(frozen=True)
class GroundCrop:
    """How a ground panorama becomes the network's ground input (DSM's protocol).

    ``fov_deg``: horizontal field of view kept, 0 < fov <= 360 (360: the whole panorama);
    ``random_orientation``: unknown orientation: the crop starts at a random column
    (training: a new heading per epoch and pair; evaluation: the fixed-seed heading of
    each test image, :func:`test_start_columns` with ``test_seed``); without it the crop
    starts at column 0 (DSM's ``grd_noise = 0``). ``active`` is False for the plain
    north-aligned panorama (fov 360, known orientation).
    """

    fov_deg: float = 360.0
    random_orientation: bool = False
    test_seed: int = DSM_TEST_SEED

    def __post_init__(self):
        fov_width(360, self.fov_deg)  # validates 0 < fov <= 360

    @classmethod
    def from_config(cls, config) -> "GroundCrop":
        """From a TrainConfig (or its dict): ``fov``, ``random_orientation``, ``fov_test_seed``."""
        get = config.get if isinstance(config, dict) else (lambda k, d=None: getattr(config, k, d))
        return cls(float(get("fov", 360.0) or 360.0), bool(get("random_orientation", False)),
                   int(get("fov_test_seed", DSM_TEST_SEED)))

    @property
    def active(self) -> bool:
        return self.fov_deg < 360.0 or self.random_orientation

    @property
    def max_rotation_deg(self) -> float:
        return 360.0 if self.random_orientation else 0.0

    def network_size(self, panorama_size) -> tuple:
        """(H, w): the ground input of the network for panoramas resized to ``panorama_size``."""
        h, w = (int(v) for v in panorama_size)
        return h, fov_width(w, self.fov_deg)

    def training_start(self, width: int, seed):
        """int32 scalar tensor: the random start column of one training crop (``seed``: (2,))."""
        return random_start_column(width, seed, self.max_rotation_deg)

    def evaluation_starts(self, num_rows: int, width: int) -> np.ndarray:
        """int64 (num_rows,): the fixed start column of test rows 0..num_rows-1."""
        return test_start_columns(np.arange(int(num_rows)), width, self.test_seed, self.max_rotation_deg)

    def apply(self, panorama, start_column):
        """:func:`crop_fov` of one (H, W, C) or a batch of panoramas."""
        return crop_fov(panorama, self.fov_deg, start_column)

    def describe(self) -> dict:
        return {"fov": float(self.fov_deg), "random_orientation": bool(self.random_orientation),
                "fov_test_seed": int(self.test_seed)}
