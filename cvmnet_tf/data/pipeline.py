"""tf.data pipelines over a :class:`~cvmnet_tf.data.splits.PairSplit`, with skip reporting.

``make_pair_dataset`` yields dicts ``{"satellite": float32 (B, Hs, Ws, 3), "ground": float32
(B, Hg, Wg, 3), "index": int64 (B,)}``; ``index`` is the pair's position in the split.
File reading, JPEG decoding and preprocessing run in parallel ``map`` calls (no Python
per element).

Bad images never crash an epoch and never become a black image:

- in-graph: the bytes are checked for JPEG SOI/EOI markers (or a PNG signature) before
  decoding, the decoded size is checked (CVUSA panoramas must be 224 x 1232 at the paper
  size; training satellites must be square, as the released code); failures set an ``ok``
  flag and the element is filtered out;
- backstop: any other error (file vanished, corrupt data inside a JPEG) is dropped by
  ``Dataset.ignore_errors``;
- reporting: :class:`SkipReport`. The training loop calls ``report.observe(batch["index"])``
  for every batch (or iterates ``report.track(dataset)``) and ``report.end_epoch()`` after
  the epoch. Indices never delivered are re-checked in Python (only those: the skipped ones
  plus, in training, the < batch_size pairs of the dropped last partial batch); the ones
  that fail are returned with path and reason, logged, and added to ``report.skipped``.

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

from . import preprocessing as pp
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
        if dataset == "cvusa":
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

    def end_epoch(self, log_result: bool = True) -> EpochSkips:
        """Close the epoch: re-check undelivered indices, log and return what was skipped."""
        unseen = np.flatnonzero(~self._seen)
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
                            num_unused=len(checked) - num_bad, num_unchecked=len(unchecked))
        self.history.append(result)
        self._seen[:] = False
        if log_result and (skipped or len(unchecked)):
            lines = "\n  ".join(f"[{s.index}] {s.path}: {s.reason}" for s in skipped[:20])
            more = f"\n  ... and {len(skipped) - 20} more" if len(skipped) > 20 else ""
            log.warning("%s epoch %d: skipped %d bad item(s)%s:\n  %s%s", self.name,
                        result.epoch, num_bad,
                        f" ({len(unchecked)} undelivered not re-checked)" if len(unchecked) else "",
                        lines, more)
        return result


# --------------------------------------------------------------------------- datasets

def _read_and_decode(path):
    return pp.decode_image_checked(tf.io.read_file(path))


def _zeros(size):
    return tf.zeros([size[0], size[1], 3], tf.float32)


def _index_dataset(n: int, shuffle: bool, seed, training: bool):
    ds = tf.data.Dataset.range(n)
    if shuffle and n > 1:
        ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    if training:
        rand = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        ds = tf.data.Dataset.zip((ds, rand))
    else:
        ds = ds.map(lambda i: (i, tf.constant(0, tf.int64)))
    return ds


def _finish(ds, batch_size: int, drop_remainder: bool, num_parallel_calls):
    ds = ds.ignore_errors(log_warning=True)
    ds = ds.filter(lambda e: e["_ok"])
    ds = ds.map(lambda e: {k: v for k, v in e.items() if k != "_ok"})
    ds = ds.batch(batch_size, drop_remainder=drop_remainder,
                  num_parallel_calls=num_parallel_calls, deterministic=True)
    return ds.prefetch(AUTOTUNE)


def make_pair_dataset(split: PairSplit, sizes: ImageSizes | None = None, *, training: bool,
                      batch_size: int, shuffle: bool | None = None, seed: int | None = None,
                      drop_remainder: bool | None = None,
                      num_parallel_calls=AUTOTUNE, return_report: bool = False):
    """Batched, preprocessed (satellite, ground) pairs of ``split``.

    Args:
      split: the pairs; ``split.dataset`` selects the ground preprocessing.
      sizes: network input sizes (default the paper's, 512x512 / 224x1232).
      training: satellite augmentation (random crop + rotation), and by default shuffle and
        drop the last partial batch. Evaluation: deterministic, in split order.
      batch_size: pairs per batch (the released code trains with 12).
      shuffle, drop_remainder: override the training defaults.
      seed: makes shuffling and augmentation reproducible (each iteration of the dataset,
        i.e. each epoch, still reshuffles / redraws, deterministically).
      num_parallel_calls: parallelism of read+decode+preprocess.
      return_report: also return the :class:`SkipReport` (see module docstring).
    Returns:
      tf.data.Dataset of {"satellite": float32 (B, Hs, Ws, 3), "ground": float32
      (B, Hg, Wg, 3), "index": int64 (B,)}, BGR minus caffe means; or (dataset, report).
    """
    sizes = sizes or ImageSizes()
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if len(split) == 0:
        raise ValueError(f"split {split.name!r} ({split.source}) holds no pairs")
    shuffle = training if shuffle is None else shuffle
    drop_remainder = training if drop_remainder is None else drop_remainder
    sat_paths = tf.constant(split.satellite_paths)
    grd_paths = tf.constant(split.ground_paths)
    dataset, s_size, g_size = split.dataset, sizes.satellite, sizes.ground

    def load(index, rnd):
        sat, sat_ok = _read_and_decode(tf.gather(sat_paths, index))
        grd, grd_ok = _read_and_decode(tf.gather(grd_paths, index))
        if training:
            sat_shape = tf.shape(sat)
            sat_ok = tf.logical_and(sat_ok, tf.equal(sat_shape[0], sat_shape[1]))
        grd_ok = tf.logical_and(grd_ok, pp.ground_ok(tf.shape(grd), g_size, dataset))
        ok = tf.logical_and(sat_ok, grd_ok)
        seed_pair = tf.stack([rnd, index])
        sat_out = tf.cond(ok, lambda: pp.preprocess_satellite(
            sat, s_size, training=training, seed=seed_pair if training else None),
            lambda: _zeros(s_size))
        grd_out = tf.cond(ok, lambda: pp.preprocess_ground(grd, g_size, dataset),
                          lambda: _zeros(g_size))
        return {"satellite": sat_out, "ground": grd_out, "index": index, "_ok": ok}

    ds = _index_dataset(len(split), shuffle, seed, training)
    ds = ds.map(load, num_parallel_calls=num_parallel_calls, deterministic=True)
    ds = _finish(ds, batch_size, drop_remainder, num_parallel_calls)
    report = SkipReport.for_pairs(split, sizes, training)
    try:
        ds.skip_report = report
    except AttributeError:  # pragma: no cover - depends on the tf.data class
        pass
    return (ds, report) if return_report else ds


def make_image_dataset(paths: Sequence[str], size, kind: str, batch_size: int, *,
                       dataset: str = "cvusa", training: bool = False,
                       shuffle: bool = False, seed: int | None = None,
                       num_parallel_calls=AUTOTUNE, return_report: bool = False):
    """One branch: {"image": float32 (B, h, w, 3), "index": int64 (B,)} in ``paths`` order.

    kind: "satellite" or "ground" (``dataset`` picks the ground rule). Evaluation by
    default (``training=True`` augments satellites). Bad images are skipped: place the
    descriptors by "index", not by row. The last partial batch is kept.
    """
    if kind not in ("satellite", "ground"):
        raise ValueError(f"kind must be 'satellite' or 'ground', got {kind!r}")
    paths = [str(p) for p in paths]
    if not paths:
        raise ValueError(f"make_image_dataset: no {kind} image paths given")
    size = tuple(int(v) for v in size)
    path_t = tf.constant(paths)

    def load(index, rnd):
        image, ok = _read_and_decode(tf.gather(path_t, index))
        if kind == "satellite":
            if training:
                shape = tf.shape(image)
                ok = tf.logical_and(ok, tf.equal(shape[0], shape[1]))
            fn = lambda: pp.preprocess_satellite(  # noqa: E731
                image, size, training=training, seed=tf.stack([rnd, index]) if training else None)
        else:
            ok = tf.logical_and(ok, pp.ground_ok(tf.shape(image), size, dataset))
            fn = lambda: pp.preprocess_ground(image, size, dataset)  # noqa: E731
        out = tf.cond(ok, fn, lambda: _zeros(size))
        return {"image": out, "index": index, "_ok": ok}

    ds = _index_dataset(len(paths), shuffle, seed, training)
    ds = ds.map(load, num_parallel_calls=num_parallel_calls, deterministic=True)
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
