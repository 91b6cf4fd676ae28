"""tf.data pipelines over a :class:`~cvmnet_tf.data.splits.PairSplit`, with skip reporting.

``make_pair_dataset`` yields dicts ``{"satellite": float32 (B, Hs, Ws, 3), "ground": float32
(B, Hg, Wg, 3), "index": int64 (B,)}``; ``index`` is the pair's position in the split.
With ``output_dtype="uint8"`` (the training loop's choice for a model built with
``input_dtype="uint8"``) the images are RGB uint8 pixels and the model's first layer does
the BGR swap, mean subtraction and float cast on the device.
File reading, JPEG decoding and preprocessing run in parallel ``map`` calls (no Python
per element).

Bad images never crash an epoch and never become a black image:

- in-graph: the bytes are checked for JPEG SOI/EOI markers (or a PNG signature) before
  decoding, the decoded size is checked (CVUSA panoramas must be 224 x 1232 at the paper
  size; training satellites must be square, as the released code); failures set an ``ok``
  flag and the element is filtered out;
- backstop: any other error (file vanished, corrupt data inside a JPEG) is dropped by
  ``Dataset.ignore_errors``;
- labelled splits (University-1652, ``split.labels``): training batches are class-unique
  (``cvmnet_tf.data.sampling.class_unique_order``, a new order per epoch); a skipped pair
  drops its whole batch rather than mixing two blocks;
- reporting: :class:`SkipReport`. The training loop calls ``report.observe(batch["index"])``
  for every batch (or iterates ``report.track(dataset)``) and ``report.end_epoch()`` after
  the epoch. Indices never delivered are re-checked in Python (only those: the skipped ones
  plus, in training, the < batch_size pairs of the dropped last partial batch); the ones
  that fail are returned with path and reason, logged, and added to ``report.skipped``.
  An epoch cut short (``end_epoch(cut_short=True)``, e.g. ``--max_steps_per_epoch``)
  re-checks only the undelivered indices that came before the last delivered one in the
  epoch's order (the pipeline keeps order, so those, and only those, were skipped): the
  order is rebuilt from the seed (``report.delivery_order``), without reading any image.

    ds, report = make_pair_dataset(split, sizes, training=True, batch_size=12, seed=0,
                                   return_report=True)
    for epoch in range(epochs):
        for batch in report.track(ds):
            train_step(batch)
        skips = report.end_epoch()      # EpochSkips: .num_skipped, .skipped [(index, path, reason)]
"""
from __future__ import annotations

import dataclasses
import logging
import os
from typing import Callable, Iterable, Sequence

import numpy as np
import tensorflow as tf

from cvmnet_tf.utils.text import first_items

from . import preprocessing as pp
from .augmentation import AUGMENTATIONS, aligned_augment_params, aligned_pair_augment
from .splits import DroppedItem, ImageSizes, PairSplit, list_distractor_images

log = logging.getLogger("cvmnet_tf.data")
AUTOTUNE = tf.data.AUTOTUNE


# --------------------------------------------------------------------------- checking

def check_image(path: str, kind: str, size, dataset: str = "cvusa",
                training: bool = False) -> str | None:
    """Why the pipeline would skip this image, or None if it is usable (eager, one file).

    Applies the same tests as the in-graph checks plus a full decode; ``kind`` is
    "satellite" or "ground".
    """
    if not os.path.isfile(path):
        return "image file missing"
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return f"unreadable: {e}"
    contents = tf.constant(data)
    try:
        image, ok = pp.decode_image_checked(contents)
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as e:
        return "corrupt image data: " + str(e.message).strip().splitlines()[0][:200]
    if not bool(ok):
        if data[:2] == b"\xff\xd8":
            return "truncated or corrupt JPEG (no end-of-image marker)"
        return "not a JPEG/PNG file (corrupt or unknown format)"
    h, w = int(image.shape[0]), int(image.shape[1])
    if kind == "ground" and not bool(pp.ground_ok(image.shape, size, dataset)):
        if pp.ground_rule(dataset) == "panorama":
            return f"ground panorama is {h}x{w}, CVUSA at 224x1232 needs exactly 224x1232"
        return f"ground image of size {h}x{w} is unusable for {dataset}"
    if kind == "satellite" and training and h != w:
        return f"satellite image is {h}x{w}, not square (released code skips it in training)"
    return None


@dataclasses.dataclass
class EpochSkips:
    """What one epoch left out.

    num_expected: items in the split; num_seen: distinct indices delivered;
    skipped: bad items (:class:`DroppedItem`: index in the split, path, reason);
    num_unused: valid items not delivered (the dropped last partial training batch, or an
    epoch cut short); num_unchecked: undelivered items not re-checked (over check_limit).
    """

    epoch: int
    num_expected: int
    num_seen: int
    skipped: list
    num_unused: int
    num_unchecked: int = 0

    @property
    def num_skipped(self) -> int:
        return len({s.index for s in self.skipped})

    @property
    def paths(self) -> list:
        return [s.path for s in self.skipped]


class SkipReport:
    """Counts and names the items a pipeline skipped, epoch by epoch.

    Build with :meth:`for_pairs` / :meth:`for_images` (or ``return_report=True`` of the
    dataset factories), call :meth:`observe` with every batch's "index" (or iterate
    :meth:`track`), then :meth:`end_epoch`. ``skipped`` accumulates the bad items over all
    epochs (each index once).
    """

    def __init__(self, num_items: int, checker: Callable[[int], list], name: str = "",
                 check_limit: int = 10000):
        self.num_items = int(num_items)
        self.checker = checker
        self.name = name
        self.check_limit = int(check_limit)
        self.history: list = []
        self._bad: dict = {}
        self._seen = np.zeros(self.num_items, dtype=bool)
        #: () -> int64 array: the order in which one epoch (one iteration) delivers the
        #: indices when nothing is skipped; set by the dataset factories.
        self.delivery_order: Callable[[], np.ndarray] | None = None

    @classmethod
    def for_pairs(cls, split: PairSplit, sizes: ImageSizes, training: bool,
                  **kwargs) -> "SkipReport":
        def checker(i):
            out = []
            for kind, path, size in (("satellite", split.satellite_paths[i], sizes.satellite),
                                     ("ground", split.ground_paths[i], sizes.ground)):
                reason = check_image(path, kind, size, split.dataset, training)
                if reason:
                    out.append((path, reason))
            return out
        return cls(len(split), checker, name=split.name, **kwargs)

    @classmethod
    def for_images(cls, paths: Sequence[str], size, kind: str, dataset: str = "cvusa",
                   training: bool = False, name: str = "", **kwargs) -> "SkipReport":
        paths = list(paths)

        def checker(i):
            reason = check_image(paths[i], kind, size, dataset, training)
            return [(paths[i], reason)] if reason else []
        return cls(len(paths), checker, name=name or f"{kind} images", **kwargs)

    def observe(self, indices) -> None:
        """Mark the split indices of one delivered batch (tensor or array, any shape)."""
        idx = np.asarray(indices.numpy() if hasattr(indices, "numpy") else indices).ravel()
        self._seen[idx.astype(np.int64)] = True

    def track(self, dataset: Iterable) -> Iterable:
        """Iterate ``dataset``, observing each batch's "index"; yields the batches unchanged."""
        for batch in dataset:
            self.observe(batch["index"])
            yield batch

    @property
    def skipped(self) -> list:
        """All bad items found so far (DroppedItem), sorted by index."""
        return [item for i in sorted(self._bad) for item in self._bad[i]]

    @property
    def num_skipped(self) -> int:
        return len(self._bad)

    def end_epoch(self, log_result: bool = True, cut_short: bool = False) -> EpochSkips:
        """Close the epoch: re-check undelivered indices, log and return what was skipped.

        ``cut_short``: the epoch was stopped early (module docstring): only the indices
        before the last delivered one in :attr:`delivery_order` are re-checked."""
        unseen = np.flatnonzero(~self._seen)
        num_unused = None
        if cut_short and self.delivery_order is not None and self._seen.any():
            order = np.asarray(self.delivery_order(), np.int64)
            delivered = self._seen[order]
            before_last = order[:int(np.flatnonzero(delivered)[-1]) + 1]
            unseen = np.sort(before_last[~self._seen[before_last]])
            num_unused = self.num_items - int(self._seen.sum())
        checked, unchecked = unseen[:self.check_limit], unseen[self.check_limit:]
        skipped = []
        for i in checked:
            i = int(i)
            if i in self._bad:
                skipped += self._bad[i]
                continue
            problems = self.checker(i)
            if problems:
                items = [DroppedItem(i, p, r) for p, r in problems]
                self._bad[i] = items
                skipped += items
        num_bad = len({s.index for s in skipped})
        result = EpochSkips(epoch=len(self.history), num_expected=self.num_items,
                            num_seen=int(self._seen.sum()), skipped=skipped,
                            num_unused=(len(checked) if num_unused is None else num_unused) - num_bad,
                            num_unchecked=len(unchecked))
        self.history.append(result)
        self._seen[:] = False
        if log_result and (skipped or len(unchecked)):
            log.warning("%s epoch %d: skipped %d bad item(s)%s:\n  %s", self.name,
                        result.epoch, num_bad,
                        f" ({len(unchecked)} undelivered not re-checked)" if len(unchecked) else "",
                        first_items([f"[{s.index}] {s.path}: {s.reason}" for s in skipped], 20, "\n  "))
        return result


# --------------------------------------------------------------------------- datasets

# How the pipelines are laid out (measured in benchmarks/input_pipeline.py):
#   index (+ per-element random seed) -> map A: read + check + decode (parallel)
#   -> filter(ok) -> map B: preprocess_satellite / preprocess_ground (parallel; no tf.cond,
#   bad elements never reach it) -> ignore_errors -> batch -> prefetch.
# (Casting/BGR/mean on the whole batch after batch() was measured as well: no faster on
# CPU, so with output_dtype="float32" every element leaves map B as final network input;
# with "uint8" the model's NetworkInput layer does that step on the device.)
#: Values of ``make_pair_dataset(output_dtype=...)``.
OUTPUT_DTYPES = ("float32", "uint8")
_ORDER_SEED_SALT = 0x5EED0C1A55  # the class-unique order's stream differs from augmentation's


_MALLOC_TUNED: bool | None = None


def reuse_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse instead of returning it to the OS (process-wide).

    A training pipeline allocates and frees tens of MB per batch (each 12-pair batch at the
    paper's sizes is 76 MB of float32). glibc serves blocks above 32 MB (and, after a
    trim, smaller ones) with fresh ``mmap`` pages, so every batch pays ~20,000 page faults
    of kernel time; measured on the 2-core test machine this was a third of the pipeline's
    CPU time. ``mallopt(M_MMAP_MAX, 0)`` and a maximal ``M_TRIM_THRESHOLD`` keep that memory
    in the heap: the process's resident size stays at its peak instead of shrinking
    between batches. Results are unchanged. Idempotent; returns False (doing nothing) where
    the C library is not glibc. :func:`make_pair_dataset` calls it for training datasets
    unless ``tune_malloc=False``.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED is None:
        _MALLOC_TUNED = False
        try:
            import ctypes
            import ctypes.util

            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            m_trim_threshold, m_mmap_max = -1, -4
            if hasattr(libc, "mallopt") and hasattr(libc, "gnu_get_libc_version"):
                _MALLOC_TUNED = bool(libc.mallopt(m_mmap_max, 0)) and \
                    bool(libc.mallopt(m_trim_threshold, 2 ** 31 - 1))
        except (OSError, AttributeError):  # pragma: no cover - non-glibc platforms
            _MALLOC_TUNED = False
        if _MALLOC_TUNED:
            log.debug("glibc malloc: freed memory is kept for reuse (M_MMAP_MAX=0)")
    return _MALLOC_TUNED


def _read_and_decode(path):
    return pp.decode_image_checked(tf.io.read_file(path))


def _epoch_random(seed):
    """int64 per element, deterministic in (seed, iteration of the dataset)."""
    return tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)


def _block_order(split: PairSplit, batch_size: int):
    """The epoch-order function of a split whose batches must avoid false negatives:
    class-unique blocks (``split.labels``) or overlap-free blocks (``split.covers``);
    None for a plain shuffle. ``order(seed) -> int64 indices`` (blocks of batch_size)."""
    from .sampling import class_unique_order, overlap_free_order

    if split.labels is not None:
        labels = np.asarray(split.labels, np.int64)
        return lambda seed: class_unique_order(labels, batch_size, seed)
    if split.covers is not None:
        covers = np.asarray(split.covers, np.int64)
        return lambda seed: overlap_free_order(covers, batch_size, seed)
    return None


def _class_unique_indices(order_fn, batch_size: int, seed):
    """Dataset of (index, block): one epoch of ``order_fn`` (:func:`_block_order`), a new
    order for each iteration of the dataset, deterministic in (seed, iteration)."""

    def order(r):
        return np.asarray(order_fn(int(r) & 0x7FFFFFFFFFFFFFFF), np.int64)

    order_seed = None if seed is None else (int(seed) ^ _ORDER_SEED_SALT) & 0x7FFFFFFF
    ds = _epoch_random(order_seed).take(1).flat_map(
        lambda r: tf.data.Dataset.from_tensor_slices(
            tf.ensure_shape(tf.numpy_function(order, [r], tf.int64, stateful=False), [None])))
    return ds.enumerate().map(lambda pos, i: (i, pos // batch_size))


def _index_dataset(n: int, shuffle: bool, seed, training: bool, order_fn=None,
                   batch_size: int = 1):
    """(index, rnd, block) triples: rnd seeds the satellite augmentation (0 when not
    training); block = the block of class-unique / overlap-free training orders, else 0."""
    if order_fn is not None:
        ds = _class_unique_indices(order_fn, batch_size, seed)
    else:
        ds = tf.data.Dataset.range(n)
        if shuffle and n > 1:
            ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
        ds = ds.map(lambda i: (i, tf.constant(0, tf.int64)))
    if training:
        ds = tf.data.Dataset.zip((ds, _epoch_random(seed)))
        return ds.map(lambda ib, rnd: (ib[0], rnd, ib[1]))
    return ds.map(lambda i, b: (i, tf.constant(0, tf.int64), b))


def _first_iteration_order(n: int, shuffle: bool, seed, training: bool, order_fn, batch_size: int) -> np.ndarray:
    """The indices the first iteration of ``_index_dataset(...)`` yields (a fresh dataset with
    the same seed repeats the order of a fresh pipeline's first epoch)."""
    ds = _index_dataset(n, shuffle, seed, training, order_fn, batch_size).map(lambda i, rnd, block: i)
    return np.fromiter(ds.as_numpy_iterator(), np.int64)


def _options(ds):
    options = tf.data.Options()
    options.deterministic = True
    options.experimental_optimization.map_parallelization = True
    return ds.with_options(options)


def _finish(ds, batch_size: int, drop_remainder: bool, num_parallel_calls,
            by_block: bool = False):
    """ignore_errors -> batch (one batch per class-unique block when ``by_block``) ->
    prefetch."""
    ds = ds.ignore_errors(log_warning=True)
    if by_block:
        # A skipped pair leaves its block short; grouping by block keeps every batch
        # class-unique (a short block is dropped with drop_remainder, else batched alone).
        # A short block's elements wait in memory until the end of the epoch.
        ds = ds.group_by_window(
            key_func=lambda e: e["_block"],
            reduce_func=lambda key, w: w.batch(batch_size, drop_remainder=drop_remainder),
            window_size=batch_size)
    else:
        ds = ds.batch(batch_size, drop_remainder=drop_remainder,
                      num_parallel_calls=num_parallel_calls, deterministic=True)
    ds = ds.map(lambda e: {k: v for k, v in e.items() if k != "_block"})
    return _options(ds.prefetch(AUTOTUNE))


def _ground_cropper(ground_crop, size, training: bool, num_rows: int):
    """``crop(image, index, seed_pair)``: the limited-FoV / unknown-orientation crop of a
    preprocessed ground panorama (:class:`cvmnet_tf.data.fov.GroundCrop`): a random
    heading per (epoch, pair) in training, the fixed-seed heading of split row ``index``
    otherwise; the identity without a crop."""
    if ground_crop is None or not ground_crop.active:
        return lambda image, index, seed_pair: image
    width = int(size[1])
    if training:
        def crop(image, index, seed_pair):
            start = ground_crop.training_start(width, tf.random.experimental.stateless_fold_in(
                seed_pair, _FOV_SEED_SALT))
            return ground_crop.apply(image, start)
        return crop
    starts = tf.constant(ground_crop.evaluation_starts(num_rows, width), tf.int32)
    return lambda image, index, seed_pair: ground_crop.apply(image, tf.gather(starts, index))


_FOV_SEED_SALT = 0x0F0F  # the FoV heading's stream differs from the satellite augmentation's


def make_pair_dataset(split: PairSplit, sizes: ImageSizes | None = None, *, training: bool,
                      batch_size: int, shuffle: bool | None = None, seed: int | None = None,
                      drop_remainder: bool | None = None,
                      num_parallel_calls=AUTOTUNE, return_report: bool = False,
                      tune_malloc: bool | None = None, augmentation: str = "released",
                      ground_crop=None, output_dtype: str = "float32"):
    """Batched, preprocessed (satellite, ground) pairs of ``split``.

    Args:
      split: the pairs; ``split.dataset`` selects the ground preprocessing rule (its
        registry entry's, see :mod:`cvmnet_tf.data.preprocessing`).
      sizes: network input sizes (default the paper's, 512x512 / 224x1232).
      training: the ``augmentation``, and by default shuffle and drop the last partial
        batch. Evaluation: deterministic, in split order, no augmentation.
      batch_size: pairs per batch (the released code trains with 12).
      shuffle, drop_remainder: override the training defaults. With ``shuffle`` and
        ``split.labels`` set (University-1652), each epoch's order is
        ``cvmnet_tf.data.sampling.class_unique_order(labels, batch_size, ...)`` instead of
        a plain shuffle: no batch holds two pairs with the same label; an epoch then has
        ``max_class_unique_batches(labels, batch_size)`` batches at most (fewer if a pair
        is skipped: its block is dropped, or batched short without drop_remainder).
      seed: makes shuffling / ordering and augmentation reproducible (each iteration of the
        dataset, i.e. each epoch, still reshuffles / redraws, deterministically).
      num_parallel_calls: parallelism of read+decode and of preprocess.
      return_report: also return the :class:`SkipReport` (see module docstring).
      tune_malloc: call :func:`reuse_freed_memory` (process-wide glibc setting that
        saves the page faults of re-allocating batch memory); default: when ``training``.
      augmentation: training augmentation, one of
        :data:`cvmnet_tf.data.augmentation.AUGMENTATIONS`: "released" (the code's satellite
        crop + quarter turns, default), "aligned" (tile and north-aligned panorama turned /
        mirrored together; the panorama width must be a multiple of 4) or "none".
      ground_crop: a :class:`cvmnet_tf.data.fov.GroundCrop` (limited field of view /
        unknown orientation, DSM's protocol): the panorama resized to ``sizes.ground`` is
        cropped to ``fov_width(Wg, fov)`` columns at a random heading per (epoch, pair) in
        training, at the fixed-seed heading of its split row in evaluation. With
        ``split.covers`` (VIGOR) training batches are overlap-free
        (:func:`cvmnet_tf.data.sampling.overlap_free_order`).
      output_dtype: "float32" (default): the network input, BGR minus the caffe means;
        "uint8": RGB pixels rounded to uint8 (:func:`~cvmnet_tf.data.preprocessing.satellite_uint8`
        / :func:`~cvmnet_tf.data.preprocessing.ground_uint8`; within 0.5 per value of the
        float32 output before its BGR / mean step) for a model that preprocesses on the
        device (``input_dtype="uint8"``, :class:`cvmnet_tf.layers.NetworkInput`): a quarter
        of the bytes per batch and no per-value float work on the host. Pick it with
        :func:`cvmnet_tf.models.model_input_dtype`.
    Returns:
      tf.data.Dataset of {"satellite": (B, Hs, Ws, 3), "ground": (B, Hg, Wg', 3), "index":
      int64 (B,)} of ``output_dtype`` (Wg' = Wg, or the crop width with ``ground_crop``);
      or (dataset, report).
    """
    sizes = sizes or ImageSizes()
    if output_dtype not in OUTPUT_DTYPES:
        raise ValueError(f"output_dtype={output_dtype!r} must be one of {OUTPUT_DTYPES}")
    raw = output_dtype == "uint8"
    if augmentation not in AUGMENTATIONS:
        raise ValueError(f"augmentation={augmentation!r} must be one of {AUGMENTATIONS}")
    if training and augmentation == "aligned" and int(sizes.ground[1]) % 4:
        raise ValueError(f"augmentation='aligned' turns the panorama by quarter turns: its width "
                         f"{sizes.ground[1]} must be a multiple of 4")
    if training if tune_malloc is None else tune_malloc:
        reuse_freed_memory()
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if len(split) == 0:
        raise ValueError(f"split {split.name!r} ({split.source}) holds no pairs")
    shuffle = training if shuffle is None else shuffle
    drop_remainder = training if drop_remainder is None else drop_remainder
    order_fn = _block_order(split, batch_size) if shuffle else None
    if shuffle and split.labels is not None:
        num_labels = len(np.unique(split.labels))
        if num_labels < batch_size:
            raise ValueError(
                f"split {split.name!r}: class-unique batches of {batch_size} need at least "
                f"{batch_size} distinct labels, the split has {num_labels}; lower batch_size")
    if order_fn is not None and split.labels is None and len(order_fn(0 if seed is None else seed)) == 0:
        raise ValueError(
            f"split {split.name!r} ({split.source}): no overlap-free batch of {batch_size} can be formed "
            f"from its {len(split)} pairs (no two panoramas of a batch may share a positive or semi-positive "
            "reference image); lower --batch_size or use more spread-out data")
    sat_paths = tf.constant(split.satellite_paths)
    grd_paths = tf.constant(split.ground_paths)
    dataset, s_size, g_size = split.dataset, sizes.satellite, sizes.ground
    for what, size in (("satellite", s_size), ("ground", g_size)):
        if len(tuple(size)) != 2 or min(int(v) for v in size) < 1:
            raise ValueError(f"sizes.{what} must be (height, width) > 0, got {size!r}")

    def decode(index, rnd, block):
        sat, sat_ok = _read_and_decode(tf.gather(sat_paths, index))
        grd, grd_ok = _read_and_decode(tf.gather(grd_paths, index))
        if training:
            sat_shape = tf.shape(sat)
            sat_ok = tf.logical_and(sat_ok, tf.equal(sat_shape[0], sat_shape[1]))
        grd_ok = tf.logical_and(grd_ok, pp.ground_ok(tf.shape(grd), g_size, dataset))
        return {"satellite": sat, "ground": grd, "index": index, "_rnd": rnd, "_block": block,
                "_ok": tf.logical_and(sat_ok, grd_ok)}

    crop = _ground_cropper(ground_crop, g_size, training, len(split))
    released = training and augmentation == "released"
    aligned = training and augmentation == "aligned"

    def preprocess(e):
        seed_pair = tf.stack([e["_rnd"], e["index"]]) if training else None
        satellite_fn, ground_fn = ((pp.satellite_uint8, pp.ground_uint8) if raw
                                   else (pp.preprocess_satellite, pp.preprocess_ground))
        sat = satellite_fn(e["satellite"], s_size, training=released, seed=seed_pair if released else None)
        grd = ground_fn(e["ground"], g_size, dataset)
        if aligned:
            sat, grd = aligned_pair_augment(sat, grd, *aligned_augment_params(seed_pair))
        grd = crop(grd, e["index"], seed_pair)   # limited FoV: after any turn of the full panorama
        return {"satellite": sat, "ground": grd, "index": e["index"], "_block": e["_block"]}

    ds = _index_dataset(len(split), shuffle, seed, training, order_fn, batch_size)
    ds = ds.map(decode, num_parallel_calls=num_parallel_calls, deterministic=True)
    ds = ds.filter(lambda e: e["_ok"])
    ds = ds.map(preprocess, num_parallel_calls=num_parallel_calls, deterministic=True)
    ds = _finish(ds, batch_size, drop_remainder, num_parallel_calls,
                 by_block=order_fn is not None)
    report = SkipReport.for_pairs(split, sizes, training)
    if seed is not None or not shuffle:  # an unseeded shuffle's order cannot be rebuilt
        report.delivery_order = lambda: _first_iteration_order(len(split), shuffle, seed, training, order_fn,
                                                               batch_size)
    try:
        ds.skip_report = report
    except AttributeError:  # pragma: no cover - depends on the tf.data class
        pass
    return (ds, report) if return_report else ds


def make_image_dataset(paths: Sequence[str], size, kind: str, batch_size: int, *,
                       dataset: str = "cvusa", training: bool = False,
                       shuffle: bool = False, seed: int | None = None,
                       num_parallel_calls=AUTOTUNE, return_report: bool = False,
                       ground_crop=None):
    """One branch: {"image": float32 (B, h, w, 3), "index": int64 (B,)} in ``paths`` order.

    kind: "satellite" or "ground"; ``dataset`` (a dataset or rule name) picks the ground
    rule (see :mod:`cvmnet_tf.data.preprocessing`).
    Evaluation by default (``training=True`` augments satellites). Bad images are skipped:
    place the descriptors by "index", not by row. The last partial batch is kept.
    ``ground_crop`` (ground images only): the crop of :func:`make_pair_dataset`, the
    evaluation heading of image ``index`` (its position in ``paths``) unless training.
    """
    if kind not in ("satellite", "ground"):
        raise ValueError(f"kind must be 'satellite' or 'ground', got {kind!r}")
    paths = [str(p) for p in paths]
    if not paths:
        raise ValueError(f"make_image_dataset: no {kind} image paths given")
    size = tuple(int(v) for v in size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"make_image_dataset: size must be (height, width) > 0, got {size!r}")
    path_t = tf.constant(paths)

    def decode(index, rnd, block):
        image, ok = _read_and_decode(tf.gather(path_t, index))
        shape = tf.shape(image)
        if kind == "satellite" and training:
            ok = tf.logical_and(ok, tf.equal(shape[0], shape[1]))
        elif kind == "ground":
            ok = tf.logical_and(ok, pp.ground_ok(shape, size, dataset))
        return {"image": image, "index": index, "_rnd": rnd, "_block": block, "_ok": ok}

    if ground_crop is not None and kind != "ground":
        raise ValueError("make_image_dataset: ground_crop applies to ground images only")
    crop = _ground_cropper(ground_crop, size, training, len(paths))

    def preprocess(e):
        seed_pair = tf.stack([e["_rnd"], e["index"]]) if training else None
        if kind == "satellite":
            image = pp.preprocess_satellite(e["image"], size, training=training, seed=seed_pair)
        else:
            image = crop(pp.preprocess_ground(e["image"], size, dataset), e["index"], seed_pair)
        return {"image": image, "index": e["index"], "_block": e["_block"]}

    ds = _index_dataset(len(paths), shuffle, seed, training)
    ds = ds.map(decode, num_parallel_calls=num_parallel_calls, deterministic=True)
    ds = ds.filter(lambda e: e["_ok"])
    ds = ds.map(preprocess, num_parallel_calls=num_parallel_calls, deterministic=True)
    ds = _finish(ds, batch_size, False, num_parallel_calls)
    report = SkipReport.for_images(paths, size, kind, dataset, training)
    try:
        ds.skip_report = report
    except AttributeError:  # pragma: no cover
        pass
    return (ds, report) if return_report else ds


def make_satellite_database(split: PairSplit, size, batch_size: int, *,
                            distractor_dir: str | None = None,
                            distractor_paths: Sequence[str] | None = None,
                            num_parallel_calls=AUTOTUNE, return_report: bool = False):
    """Test database: the split's satellite images (index 0..N-1, row i matches query i),
    then satellite-only distractors (index N..N+M-1) from ``distractor_dir`` (sorted file
    names, see :func:`list_distractor_images`) and/or ``distractor_paths``.
    Evaluation preprocessing; elements {"image", "index"} as :func:`make_image_dataset`."""
    extra = list(distractor_paths or [])
    if distractor_dir is not None:
        extra += list_distractor_images(distractor_dir)
    paths = list(split.satellite_paths) + extra
    return make_image_dataset(paths, size, "satellite", batch_size,
                              dataset=split.dataset, num_parallel_calls=num_parallel_calls,
                              return_report=return_report)
