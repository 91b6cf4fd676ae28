"""Retrieval with several true matches per query: recall@K and AP (University-1652).

Setting (Zheng et al., ACM MM 2020): every query and gallery image carries an
integer class label (the building id); a gallery image is a true match of a
query when their labels are equal. Drone -> satellite has one true match per
query (the satellite image of the building); satellite -> drone about 54.

Conventions:

- Descriptors are float32 (N, dim); similarity is the dot product ``q . g``
  (cosine for the l2-normalised descriptors of this package), computed in
  query blocks by one matrix product, and every comparison uses the values of
  that same block.
- Ranked list: gallery sorted by decreasing similarity; among EQUAL
  similarities true matches come first (the released CVM-Net rule "only
  strictly more similar items rank before a true match"). So the 0-based
  position of the k-th true match (k = 0, 1, ..., matches sorted by decreasing
  similarity) is ``r_k = k + #{non-matching gallery items strictly more
  similar than that match}``.
- recall@K: fraction of queries whose FIRST true match has ``r_0 < K``
  (University-1652's CMC). With ties counted against the query (:func:`labelled_ranks`,
  the same blocks): the non-matching items at least as similar as the best true match up
  to float32 resolution (:func:`cvmnet_tf.evaluation.metrics.tie_tolerance`), reported as
  "pessimistic/recall@K" next to it, so collapsed descriptors do not read as perfect.
- AP per query (University-1652 ``evaluate_gpu.py`` ``compute_mAP``, the
  "trapezoid" AP of the Oxford-buildings / Market-1501 code), with n true
  matches::

      AP = sum_k (1 / n) * (old_precision_k + precision_k) / 2
      precision_k     = (k + 1) / (r_k + 1)
      old_precision_k = k / r_k   if r_k != 0 else 1.0

  "AP" in the result is the mean over queries, a fraction in [0, 1].
- Gallery label -1 marks distractors: they match no query and STAY in the
  ranked list (they make retrieval harder). Note: the released
  ``compute_mAP`` deletes gallery items labelled -1 ("junk") from the list;
  its standard test galleries contain none, so this differs only when
  distractors are added (University-1652's 160k-distractor challenge is scored
  by a server from submitted top-10 lists, not by that script).
- Query labels must be >= 0, and every query needs at least one true match in
  the gallery (ValueError otherwise, naming how many lack one). The released
  script skips such queries in the sums but still divides by all queries.

Cost: the matrix product (Nq x Ng x dim multiply-adds) dominates. Positions
are obtained per block either by counting, per true match, the gallery items
strictly more similar (m passes over the block, m = most true matches of a
query in the block) or, when m is large, by sorting each similarity row in
place and binary-searching the match similarities; the cheaper one is chosen
per block (:data:`SORT_WHEN_MATCHES_ABOVE`). Extra memory: one float32 block
(``block_size x Ng``, default about 128 MiB) plus one bool block of the same
shape, plus O(Nq * matches) for the positions.
"""
from __future__ import annotations

from typing import Dict, Iterable, Optional, Tuple

import numpy as np

from cvmnet_tf.evaluation.metrics import (check_descriptor_pair, check_positive_int, count_rank_rows,
                                         resolve_block_size, similarity_blocks, tie_tolerance)

__all__ = [
    "DISTRACTOR_LABEL",
    "SORT_WHEN_MATCHES_ABOVE",
    "average_precision",
    "average_precisions",
    "check_labels",
    "first_match_ranks",
    "labelled_ranks",
    "labelled_retrieval",
    "match_positions",
    "summarize_positions",
]

#: Gallery label of distractor images (matches no query).
DISTRACTOR_LABEL = -1

#: Per block: count per match (m passes) when the largest number of true
#: matches of a query in the block is at most this, else sort the rows. Set
#: from a measurement on 2 CPU cores (numpy 2.4): one compare-and-count pass
#: costs about 1/8 of an in-place row sort at Ng = 50,000.
SORT_WHEN_MATCHES_ABOVE = 8


# --------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------
def check_labels(labels, num_rows: int, name: str, *, allow_distractors: bool) -> np.ndarray:
    """Validate a label vector and return it as int64 (N,).

    Args:
      labels: integer array-like of shape (num_rows,).
      num_rows: rows of the matching descriptor array.
      name: how the labels are called in error messages.
      allow_distractors: whether -1 (distractor) is allowed; other negative
        values are always refused.

    Raises:
      ValueError naming ``name`` for a wrong shape/length, a non-integer dtype
      (floats are accepted only when integral) or negative labels.
    """
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"{name}: labels must be a 1-D array; got shape {arr.shape}")
    if arr.shape[0] != num_rows:
        raise ValueError(f"{name}: {arr.shape[0]} labels for {num_rows} descriptor rows (lengths must match)")
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ValueError(f"{name}: labels must be integers; got non-integral float values")
    elif not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name}: labels must be integers; got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    lowest = DISTRACTOR_LABEL if allow_distractors else 0
    if arr.size and arr.min() < lowest:
        bad = int(np.flatnonzero(arr < lowest)[0])
        allowed = ">= 0 or -1 (distractor)" if allow_distractors else ">= 0"
        raise ValueError(f"{name}: labels must be {allowed}; row {bad} has {arr[bad]}")
    return arr


def _prepare(query, gallery, query_labels, gallery_labels, query_name, gallery_name):
    query, gallery = check_descriptor_pair(query, gallery, query_name, gallery_name)
    ql = check_labels(query_labels, query.shape[0], f"{query_name} labels", allow_distractors=False)
    gl = check_labels(gallery_labels, gallery.shape[0], f"{gallery_name} labels", allow_distractors=True)
    # Gallery rows grouped by label: order[lo:hi] are the rows of one label.
    order = np.argsort(gl, kind="stable")
    sorted_labels = gl[order]
    lo = np.searchsorted(sorted_labels, ql, side="left")
    hi = np.searchsorted(sorted_labels, ql, side="right")
    missing = int(np.count_nonzero(hi == lo))
    if missing:
        first = int(np.flatnonzero(hi == lo)[0])
        raise ValueError(f"{missing} of {len(ql)} queries have no true match in {gallery_name} (no gallery image "
                         f"with the same label; first: query row {first}, label {ql[first]})")
    return query, gallery, order, lo, hi


# --------------------------------------------------------------------------
# The blocked engine
# --------------------------------------------------------------------------
def _block_positions(s: np.ndarray, match_cols: np.ndarray, counts: np.ndarray, buf: np.ndarray) -> np.ndarray:
    """Positions of the true matches for one block.

    Args:
      s: float32 (b, Ng) similarities (may be sorted in place).
      match_cols: int64 (sum(counts),) gallery columns of the true matches,
        grouped by row.
      counts: int64 (b,) true matches per row (>= 1).
      buf: bool (>= b, Ng) scratch.

    Returns:
      int64 (b, m) positions r_k, sorted ascending per row, m = counts.max();
      entries k >= counts[row] are undefined.
    """
    b = s.shape[0]
    m = int(counts.max())
    row_of = np.repeat(np.arange(b), counts)
    col_in_row = np.arange(row_of.size) - np.repeat(np.cumsum(counts) - counts, counts)
    vals = np.full((b, m), -np.inf, np.float32)
    vals[row_of, col_in_row] = s[row_of, match_cols]
    vals = -np.sort(-vals, axis=1)          # decreasing per row; padding (-inf) last
    # Matches strictly more similar than match k = index where its run of equal values starts.
    ar = np.broadcast_to(np.arange(m), (b, m))
    new_run = np.ones((b, m), bool)
    new_run[:, 1:] = vals[:, 1:] != vals[:, :-1]
    run_start = np.maximum.accumulate(np.where(new_run, ar, 0), axis=1)
    greater = np.empty((b, m), np.int64)    # gallery items (any label) strictly more similar
    if m <= SORT_WHEN_MATCHES_ABOVE:
        for k in range(m):
            np.greater(s, vals[:, k:k + 1], out=buf[:b])
            greater[:, k] = np.count_nonzero(buf[:b], axis=1)
    else:
        n = s.shape[1]
        s.sort(axis=1)                       # ascending, in place
        for i in range(b):
            c = int(counts[i])
            greater[i, :c] = n - np.searchsorted(s[i], vals[i, :c], side="right")
    # r_k = k + (items strictly more similar) - (matches strictly more similar)
    return ar + greater - run_start


def labelled_ranks(query, gallery, query_labels, gallery_labels, block_size: Optional[int] = None,
                   query_name: str = "query", gallery_name: str = "gallery"):
    """:func:`match_positions` plus, from the same blocks, each query's pessimistic first rank.

    Returns ``(indptr, positions, first_pessimistic)``; ``first_pessimistic`` int64 (Nq,):
    the non-matching gallery items at least as similar as the query's best true match up to
    float32 resolution (ties counted against the query; >= ``positions[indptr[:-1]]``).
    """
    return _positions(query, gallery, query_labels, gallery_labels, block_size, query_name, gallery_name, True)


def match_positions(query, gallery, query_labels, gallery_labels, block_size: Optional[int] = None,
                    query_name: str = "query", gallery_name: str = "gallery") -> Tuple[np.ndarray, np.ndarray]:
    """0-based positions of every query's true matches in its ranked gallery.

    Args:
      query: float (Nq, dim) query descriptors.
      gallery: float (Ng, dim) gallery descriptors (distractors included).
      query_labels: int (Nq,) labels >= 0.
      gallery_labels: int (Ng,) labels >= 0, or -1 for distractors.
      block_size: query rows per block; default keeps one float32 block of
        ``block_size x Ng`` similarities near 128 MiB.
      query_name, gallery_name: names used in error messages.

    Returns:
      (indptr int64 (Nq + 1,), positions int64 (indptr[-1],)): the positions
      of query i's true matches are ``positions[indptr[i]:indptr[i + 1]]``,
      strictly increasing; ``positions[indptr[i]]`` is the rank of the first
      true match (number of gallery items strictly more similar than it).
    """
    indptr, positions, _ = _positions(query, gallery, query_labels, gallery_labels, block_size, query_name,
                                      gallery_name, False)
    return indptr, positions


def _positions(query, gallery, query_labels, gallery_labels, block_size, query_name, gallery_name, pessimistic):
    query, gallery, order, lo, hi = _prepare(query, gallery, query_labels, gallery_labels, query_name, gallery_name)
    nq, ng = query.shape[0], gallery.shape[0]
    counts_all = (hi - lo).astype(np.int64)
    indptr = np.zeros(nq + 1, np.int64)
    np.cumsum(counts_all, out=indptr[1:])
    positions = np.empty(int(indptr[-1]), np.int64)
    first_pessimistic = np.empty(nq, np.int64) if pessimistic else None
    tol = tie_tolerance(query, gallery) if pessimistic else None
    b = resolve_block_size(block_size, nq, ng)
    buf = np.empty((b, ng), np.bool_)
    for start, stop, s in similarity_blocks(query, gallery, b):
        counts = counts_all[start:stop]
        # Gallery columns of the matches, row by row: order[lo[i]:hi[i]].
        offs = np.repeat(lo[start:stop] - (np.cumsum(counts) - counts), counts)
        cols = order[offs + np.arange(int(counts.sum()))]
        if pessimistic:  # before _block_positions, which may sort s in place
            rows = np.repeat(np.arange(stop - start), counts)
            match_sim = s[rows, cols]
            best = np.maximum.reduceat(match_sim, np.cumsum(counts) - counts)
            _, at_least = count_rank_rows(s, best, tol[start:stop], buf)
            matches_at_least = np.add.reduceat(match_sim >= (best - tol[start:stop])[rows],
                                               np.cumsum(counts) - counts)
            first_pessimistic[start:stop] = at_least - matches_at_least
        pos = _block_positions(s, cols, counts, buf)
        valid = np.arange(pos.shape[1])[None, :] < counts[:, None]
        positions[indptr[start]:indptr[stop]] = pos[valid]
    return indptr, positions, first_pessimistic


def _check_csr(indptr, positions) -> Tuple[np.ndarray, np.ndarray]:
    indptr = np.asarray(indptr)
    positions = np.asarray(positions)
    if indptr.ndim != 1 or indptr.size < 2 or positions.ndim != 1:
        raise ValueError("indptr must be 1-D with >= 2 entries and positions 1-D")
    if not (np.issubdtype(indptr.dtype, np.integer) and np.issubdtype(positions.dtype, np.integer)):
        raise ValueError("indptr and positions must be integers")
    counts = np.diff(indptr)
    if indptr[0] != 0 or indptr[-1] != positions.size or counts.min() < 1:
        raise ValueError("indptr must start at 0, end at len(positions) and give every query >= 1 position")
    return indptr.astype(np.int64), positions.astype(np.int64)


def average_precisions(indptr, positions) -> np.ndarray:
    """University-1652 AP of every query from :func:`match_positions` output.

    Args:
      indptr: int (Nq + 1,); positions: int (indptr[-1],), 0-based positions of
        each query's true matches, increasing within a query.

    Returns:
      float64 (Nq,) AP per query in [0, 1] (formula in the module docstring).
    """
    indptr, positions = _check_csr(indptr, positions)
    counts = np.diff(indptr)
    k = np.arange(positions.size) - np.repeat(indptr[:-1], counts)
    same_query = np.diff(np.repeat(np.arange(counts.size), counts)) == 0
    if np.any(positions < k) or np.any(np.diff(positions)[same_query] <= 0):
        raise ValueError("positions must be strictly increasing within each query and >= the match index")
    r = positions.astype(np.float64)
    precision = (k + 1) / (r + 1)
    old = np.divide(k, r, out=np.ones_like(r), where=r != 0)
    terms = (old + precision) / (2.0 * np.repeat(counts, counts))
    return np.add.reduceat(terms, indptr[:-1])


def average_precision(positions) -> float:
    """University-1652 AP (0..1) of ONE query.

    Args:
      positions: int (n,) 0-based positions of its n true matches in the
        ranked gallery (any order; sorted here).
    """
    p = np.sort(np.asarray(positions).ravel())
    if p.size == 0:
        raise ValueError("positions must hold at least one true match")
    return float(average_precisions(np.array([0, p.size]), p)[0])


def first_match_ranks(query, gallery, query_labels, gallery_labels, block_size: Optional[int] = None) -> np.ndarray:
    """int64 (Nq,): gallery items strictly more similar than each query's best true match.

    Same arguments as :func:`match_positions`; rank 0 = a true match is (jointly) first.
    """
    indptr, positions = match_positions(query, gallery, query_labels, gallery_labels, block_size)
    return positions[indptr[:-1]]


def labelled_retrieval(query, gallery, query_labels, gallery_labels, ks: Iterable[int] = (1, 5, 10),
                       block_size: Optional[int] = None, query_name: str = "query",
                       gallery_name: str = "gallery") -> Dict[str, float]:
    """Recall@K and mean AP as University-1652 reports them.

    Args:
      query: float (Nq, dim) query descriptors (e.g. drone images).
      gallery: float (Ng, dim) gallery descriptors (e.g. satellite images,
        distractors appended with label -1).
      query_labels: int (Nq,) class labels >= 0.
      gallery_labels: int (Ng,) class labels >= 0 or -1 (distractor).
      ks: the K of recall@K.
      block_size: query rows per block (default: about 128 MiB of similarities).
      query_name, gallery_name: names used in error messages (e.g. file names).

    Returns:
      dict: "recall@<k>" for k in ks and "AP" (fractions in [0, 1]);
      "num_query", "num_gallery", "num_distractors" (gallery rows labelled -1),
      "mean_true_matches" (average true matches per query).

    Raises:
      ValueError for bad descriptors (NaN/inf, shape, dim mismatch), bad
      labels (length, dtype, negative) or queries without a true match.
    """
    ks = [check_positive_int(k, "ks") for k in ks]
    indptr, positions, first_pessimistic = labelled_ranks(query, gallery, query_labels, gallery_labels, block_size,
                                                          query_name=query_name, gallery_name=gallery_name)
    return summarize_positions(indptr, positions, ks, gallery_labels, first_pessimistic)


def summarize_positions(indptr, positions, ks: Iterable[int], gallery_labels,
                        first_pessimistic=None) -> Dict[str, float]:
    """The dict of :func:`labelled_retrieval` from :func:`match_positions` output.

    Args:
      indptr, positions: CSR positions of the true matches (see :func:`match_positions`).
      ks: the K of recall@K.
      gallery_labels: int (Ng,) gallery labels (for "num_gallery" / "num_distractors").
      first_pessimistic: optional int (Nq,) pessimistic first ranks (:func:`labelled_ranks`):
        adds "pessimistic/recall@<k>" and "tied_queries" (fraction of queries whose first
        rank depends on the tie rule).
    """
    ks = [check_positive_int(k, "ks") for k in ks]
    indptr, positions = _check_csr(indptr, positions)
    gallery_labels = np.asarray(gallery_labels)
    first = positions[indptr[:-1]]
    nq = first.size
    out: Dict[str, float] = {f"recall@{k}": float(np.count_nonzero(first < k) / nq) for k in ks}
    if first_pessimistic is not None:
        pess = np.asarray(first_pessimistic)
        out.update({f"pessimistic/recall@{k}": float(np.count_nonzero(pess < k) / nq) for k in ks})
        out["tied_queries"] = float(np.count_nonzero(pess != first) / nq)
    out["AP"] = float(np.mean(average_precisions(indptr, positions)))
    out["num_query"] = int(nq)
    out["num_gallery"] = int(gallery_labels.shape[0])
    out["num_distractors"] = int(np.count_nonzero(gallery_labels == DISTRACTOR_LABEL))
    out["mean_true_matches"] = float(positions.size / nq)
    return out
