"""Batch orders whose in-batch negatives are true negatives (numpy only, no TensorFlow):
class-unique batches for labelled pair splits (University-1652) and overlap-free batches for
splits whose pairs cover several reference images (VIGOR, :func:`overlap_free_order`).

University-1652 has ~54 drone images per building, all paired with the same satellite
image. CVM-Net's losses treat every off-diagonal pair of a batch as a negative, so a batch
must not hold two pairs of one building: :func:`class_unique_order` draws an epoch's order
of pair indices in which every consecutive block of ``batch_size`` has distinct labels.

Algorithm (largest-remaining-first): the pairs of each class are shuffled; each block takes
the next unused pair of the ``batch_size`` classes with the most unused pairs left (ties
broken at random); blocks stop when fewer than ``batch_size`` classes have pairs left.
Finally the blocks, and the positions inside each block, are shuffled so that large classes
are not concentrated at the start of the epoch. Cost: O(N log C) for N pairs of C classes.

Pairs left out per epoch: this greedy builds the largest possible number of blocks,

    M / batch_size = max { m : sum_c min(n_c, m) >= m * batch_size }   (n_c = pairs of class c)

(:func:`max_class_unique_batches`; no order can do better, since a class can give at most
one pair to each block). So for balanced classes (all n_c equal, or within 1 of each
other) only ``N mod batch_size`` < ``batch_size`` pairs are left out, a fraction below
``batch_size / N``; with unbalanced classes the surplus of the largest classes is left out
(e.g. one class holding half of the pairs). Which pairs are left out changes with the seed.
"""
from __future__ import annotations

import heapq

import numpy as np


def _check(labels, batch_size) -> tuple:
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"labels must be a 1-D array of class labels, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) \
                and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise ValueError(f"labels must be integers, got dtype {arr.dtype}")
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    return arr.astype(np.int64, copy=False), int(batch_size)


def max_class_unique_batches(labels, batch_size: int) -> int:
    """Largest number of class-unique blocks of ``batch_size`` that ``labels`` (N,) allows:
    ``max {m : sum_c min(n_c, m) >= m * batch_size}``. This is exactly
    ``len(class_unique_order(labels, batch_size, seed)) // batch_size`` for every seed, so
    it gives the number of training steps per epoch. 0 when there are fewer distinct labels
    than ``batch_size``."""
    arr, b = _check(labels, batch_size)
    counts = np.unique(arr, return_counts=True)[1] if arr.size else np.zeros(0, np.int64)
    # g(m) = sum_c min(n_c, m) - m*b is concave with g(0) = 0, so {m : g(m) >= 0} = [0, m*].
    lo, hi = 0, arr.size // b
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if np.minimum(counts, mid).sum() >= mid * b:
            lo = mid
        else:
            hi = mid - 1
    return int(lo)


def class_unique_order(labels, batch_size: int, seed) -> np.ndarray:
    """One epoch's order of pair indices with class-unique batches.

    Args:
      labels: (N,) integer class label per pair (e.g. ``PairSplit.labels``).
      batch_size: B, the training batch size.
      seed: int (or a ``numpy.random.SeedSequence``) for ``numpy.random.default_rng``; the
        same (labels, batch_size, seed) always gives the same order. Use e.g.
        ``seed + epoch`` for a new order each epoch.

    Returns:
      int64 (M,) indices into ``labels``, M = B * :func:`max_class_unique_batches` (a
      multiple of B). Each index appears at most once; every block ``[k*B, (k+1)*B)`` holds
      B distinct labels. For balanced classes M = N - (N mod B) (see the module docstring
      for what is left out otherwise).

    Raises:
      ValueError: labels not 1-D integers, batch_size < 1, or fewer than B distinct labels
        (no class-unique batch exists).
    """
    arr, b = _check(labels, batch_size)
    classes, inverse = np.unique(arr, return_inverse=True)
    if len(classes) < b:
        raise ValueError(f"class-unique batches of batch_size={b} need at least {b} distinct "
                         f"labels, got {len(classes)} (over {arr.size} pairs); lower the batch "
                         "size")
    rng = np.random.default_rng(seed)
    # shuffled members of each class: members[starts[c]:starts[c+1]] are class c's pairs
    perm = rng.permutation(arr.size)
    members = perm[np.argsort(inverse[perm], kind="stable")]
    counts = np.bincount(inverse, minlength=len(classes))
    starts = np.concatenate([[0], np.cumsum(counts)])
    taken = np.zeros(len(classes), np.int64)
    # max-heap on remaining count, random tie-break; each class is in the heap at most once
    ties = rng.random(arr.size + len(classes))
    t = len(classes)
    heap = [(-int(counts[c]), ties[c], c) for c in range(len(classes))]
    heapq.heapify(heap)
    blocks = []
    while len(heap) >= b:
        picked = [heapq.heappop(heap) for _ in range(b)]
        block = []
        for neg_left, _, c in picked:
            block.append(members[starts[c] + taken[c]])
            taken[c] += 1
            if neg_left + 1 < 0:
                heapq.heappush(heap, (neg_left + 1, ties[t], c))
                t += 1
        blocks.append(block)
    return shuffled_blocks(blocks, rng)


def shuffled_blocks(blocks, rng) -> np.ndarray:
    """The blocks (lists of equal length) in a random order, each block's members shuffled
    too (so that the way blocks were filled leaves no trace in the epoch), flattened:
    int64 (len(blocks) * block size,)."""
    if not blocks:
        return np.zeros(0, np.int64)
    order = np.asarray(blocks, dtype=np.int64)
    order = order[rng.permutation(len(order))]
    order = rng.permuted(order, axis=1)
    return order.reshape(-1)


# ------------------------------------------------------------------ overlap-free batches (VIGOR)
def _check_covers(covers, batch_size) -> tuple:
    arr = np.asarray(covers)
    if arr.ndim != 2 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"covers must be a 2-D integer array (pairs x reference rows), got {arr.dtype} "
                         f"{arr.shape}")
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    return arr.astype(np.int64, copy=False), int(batch_size)


def overlap_free_order(covers, batch_size: int, seed) -> np.ndarray:
    """One epoch's order of pair indices in which no block of ``batch_size`` holds two pairs
    that share a reference image (VIGOR's ``check_overlap``: panoramas whose positive or
    semi-positive satellite images intersect never meet in one batch).

    Args:
      covers: int (N, S) reference rows each pair covers (VIGOR: positive + 3
        semi-positives, :attr:`cvmnet_tf.data.splits.PairSplit.covers`); negative entries
        are "none" and conflict with nothing.
      batch_size: B.
      seed: as :func:`class_unique_order` (the same inputs always give the same order).

    Returns:
      int64 (M,) indices, M a multiple of B, each index at most once; every block
      ``[k*B, (k+1)*B)`` is overlap-free.

    Algorithm (first fit): the pairs are visited in a random order; each joins the oldest
    open block it does not overlap (a block closes when it holds B pairs), else opens a
    new one. Blocks still open at the end (fewer than B pairs: the ones whose pairs
    overlap everything else) are left out, then the closed blocks and the positions inside
    each are shuffled. The released VIGOR code instead draws a positive satellite at
    random, then one of its panoramas, with replacement, rejecting overlapping draws; here
    an epoch visits each pair at most once. Cost: O(N * S * open blocks).
    """
    arr, b = _check_covers(covers, batch_size)
    rng = np.random.default_rng(seed)
    open_blocks: list = []       # [(members, set of covered rows)]
    closed: list = []
    for i in rng.permutation(len(arr)):
        rows = {int(r) for r in arr[i] if r >= 0}
        for k, (members, used) in enumerate(open_blocks):
            if not rows & used:
                members.append(int(i))
                used |= rows
                if len(members) == b:
                    closed.append(members)
                    del open_blocks[k]
                break
        else:
            if b == 1:
                closed.append([int(i)])
            else:
                open_blocks.append(([int(i)], set(rows)))
    return shuffled_blocks(closed, rng)

